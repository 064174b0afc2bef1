"""What a program name really names inside the sandbox, and what the program can do.

The sandbox's root is the host's ``/usr`` (read-only, with ``/bin``, ``/sbin``,
``/lib*`` as symlinks into it), a per-execution ``/work`` and a fresh ``/tmp``.
``resolve`` maps a name the way the sandbox will (PATH lookup or path
normalisation), then follows symlinks on the host, so ``../../usr/bin/git``,
``/bin/git`` and ``git`` are one program and ``/work/git`` is not that program.

``capability`` says whether a program can run arbitrary code: interpreters,
shells, wrappers that exec their arguments, and ordinary tools given an
exec-capable flag (``find -exec``, ``git -c``, ``tar --to-command`` ...). The
lists are best effort; the sandbox, not this module, is the security boundary.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SANDBOX_PATH = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"
SANDBOX_HOME = "/work"
# Sandbox paths that are symlinks into /usr (bwrap --symlink) -> their target.
_USR_SYMLINKS = {
    "/bin": "/usr/bin",
    "/sbin": "/usr/sbin",
    "/lib": "/usr/lib",
    "/lib64": "/usr/lib64",
}
_VALID_NAME = re.compile(r"^[A-Za-z0-9._+/\[-]+$")
MAX_NAME_LEN = 255

# Builtins of /bin/sh that run no other program and change nothing outside the shell.
SAFE_BUILTINS = frozenset(
    {"cd", ":", "true", "false", "echo", "printf", "test", "[", "pwd", "exit"}
)
# Builtins that run or redefine arbitrary commands, or change the environment of later ones.
EXEC_BUILTINS = frozenset(
    {"eval", "exec", "source", ".", "command", "builtin", "trap", "alias", "export", "unset",
     "set", "readonly", "declare", "typeset", "local", "fc", "hash", "enable", "ulimit"}
)  # fmt: skip
_INTERPRETER_NAMES = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox",
     "node", "nodejs", "deno", "bun", "tclsh", "wish", "expect", "guile", "osascript",
     "awk", "gawk", "mawk", "nawk", "jq", "gdb", "strace", "ltrace", "valgrind",
     "env", "xargs", "parallel", "nohup", "timeout", "nice", "ionice", "setsid", "stdbuf",
     "chroot", "unshare", "nsenter", "setpriv", "sudo", "su", "doas", "runuser", "pkexec",
     "bwrap", "firejail", "flock", "watch", "script", "time", "chrt", "taskset", "prlimit",
     "choom", "capsh", "make", "gmake", "cmake", "ninja", "ssh", "scp", "sftp", "rsync",
     "vi", "vim", "nvim", "view", "ex", "ed", "emacs", "nano", "less", "more", "man",
     "dpkg", "apt", "apt-get", "pip", "pip3", "npm", "npx", "gcc", "cc", "g++", "clang",
     "ld", "as", "systemd-run", "run-parts", "crontab", "at", "batch", "m4"}
)  # fmt: skip
_INTERPRETER_PATTERNS = re.compile(
    r"^(python|pypy|perl|ruby|irb|php|lua|luajit|java|jshell|Rscript|R|julia|tclsh|wish)"
    r"[0-9.]*(-config)?$"
    # The dynamic loader runs any ELF file it is given: /lib64/ld-linux-x86-64.so.2 /work/x
    r"|^ld([-.][A-Za-z0-9_.-]*)?\.so(\.[0-9]+)*$"
)


@dataclass(frozen=True)
class Program:
    """A program name as the policy sees it.

    ``names`` holds every name the program goes by (as given, after PATH or
    path resolution, and after following symlinks); ``real_path`` is the host
    file (None for builtins and programs that do not exist); ``system`` says it
    lives in the read-only system tree, not in ``/work`` or ``/tmp``.
    """

    given: str
    sandbox_path: str | None
    real_path: str | None
    names: frozenset[str]
    builtin: bool = False
    system: bool = True

    @property
    def found(self) -> bool:
        return self.builtin or self.real_path is not None


def invalid_name_reason(name: str) -> str | None:
    """Why ``name`` cannot name a program (lookalikes, spaces, NUL, ...), or None."""
    if not name:
        return "the program name is empty"
    if len(name) > MAX_NAME_LEN:
        return f"the program name is longer than {MAX_NAME_LEN} characters"
    if not _VALID_NAME.match(name):
        shown = sorted({f"U+{ord(c):04X}" for c in name if not _VALID_NAME.match(c)})
        return (
            f"the program name {name!r} has characters outside [A-Za-z0-9._+/[-] "
            f"({', '.join(shown)}): spaces, Unicode lookalikes and control characters "
            "are not accepted"
        )
    return None


def sandbox_path_of(name: str) -> str:
    """Where a path-like name points inside the sandbox (cwd is /work)."""
    return posixpath.normpath(posixpath.join(SANDBOX_HOME, name))


def host_path_of(sandbox_path: str) -> str | None:
    """The host file behind a sandbox path in the system tree; None outside it."""
    for link, target in _USR_SYMLINKS.items():
        if sandbox_path == link or sandbox_path.startswith(link + "/"):
            sandbox_path = target + sandbox_path[len(link) :]
    if sandbox_path.startswith("/usr/"):
        return sandbox_path
    return None


def resolve(
    name: str, *, builtins: bool = True, is_executable: Callable[[str], bool] | None = None
) -> Program:
    """Resolve ``name`` (already valid per ``invalid_name_reason``) as the sandbox would.

    ``builtins`` says whether a shell runs the name (so ``echo`` is sh's builtin)
    or it is exec'd directly (so ``echo`` is /usr/bin/echo).
    """
    check = is_executable or _is_executable_file
    if "/" not in name:
        if builtins and (name in SAFE_BUILTINS or name in EXEC_BUILTINS):
            return Program(name, None, None, frozenset({name}), builtin=True)
        for directory in SANDBOX_PATH.split(":"):
            candidate = f"{directory}/{name}"
            host = host_path_of(candidate)
            if host is not None and check(host):
                return _found(name, candidate, host)
        return Program(name, None, None, frozenset({name}))
    sandbox_path = sandbox_path_of(name)
    host = host_path_of(sandbox_path)
    if host is None:
        names = frozenset({posixpath.basename(name), posixpath.basename(sandbox_path)})
        return Program(name, sandbox_path, None, names, system=False)
    if not check(host):
        return Program(name, sandbox_path, None, frozenset({posixpath.basename(sandbox_path)}))
    return _found(name, sandbox_path, host)


def _found(given: str, sandbox_path: str, host: str) -> Program:
    real = os.path.realpath(host)
    names = {posixpath.basename(given), posixpath.basename(sandbox_path), posixpath.basename(real)}
    # A symlink chain outside /usr (e.g. via /etc/alternatives) is not in the sandbox.
    system = real.startswith("/usr/")
    # The /usr path is the same inside and outside: it is what gets exec'd (not the
    # symlink target, so multi-call binaries keep their name).
    return Program(given, host, real, frozenset(names), system=system)


def _is_executable_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def is_interpreter(program: Program) -> bool:
    """Whether the program is, or wraps, something that runs arbitrary code."""
    return any(
        n in _INTERPRETER_NAMES or n in EXEC_BUILTINS or _INTERPRETER_PATTERNS.match(n)
        for n in program.names
    )


def _find_flags(args: Sequence[str]) -> str | None:
    bad = {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf",
           "-fls"}  # fmt: skip
    return next((a for a in args if a in bad), None)


def _prefix_flags(*prefixes: str) -> Callable[[Sequence[str]], str | None]:
    def check(args: Sequence[str]) -> str | None:
        return next((a for a in args if any(a.startswith(p) for p in prefixes)), None)

    return check


def _sed_flags(args: Sequence[str]) -> str | None:
    """sed scripts can run commands (``e``) and write files (``w``); allow ``-n Np`` only."""
    rest = list(args)
    if rest and rest[0] == "-n":
        rest = rest[1:]
    if (
        rest
        and re.fullmatch(r"[0-9]+(,[0-9]+)?p", rest[0])
        and all(not a.startswith("-") for a in rest[1:])
    ):
        return None
    return " ".join(args[:2]) or "(no script)"


_FLAG_CHECKS: dict[str, Callable[[Sequence[str]], str | None]] = {
    "find": _find_flags,
    "rg": _prefix_flags("--pre", "--hostname-bin", "-z", "--search-zip"),
    "git": _prefix_flags(
        "-c",
        "--config-env",
        "--output",
        "--ext-diff",
        "--textconv",
        "--exec",
        "--upload-pack",
        "--receive-pack",
        "-u",
        "--open-files-in-pager",
        "--template",
        "--run",
    ),
    "tar": _prefix_flags(
        "--to-command",
        "--checkpoint-action",
        "-I",
        "--use-compress-program",
        "-F",
        "--info-script",
        "--new-volume-script",
        "--rsh-command",
        "--rmt-command",
    ),
    "sort": _prefix_flags("--compress-program"),
    "split": _prefix_flags("--filter"),
    "zip": _prefix_flags("-TT", "--unzip-command"),
    "base64": _prefix_flags("-o", "--output"),
    "sed": _sed_flags,
}


def exec_capable_flag(program: Program, args: Sequence[str | None]) -> str | None:
    """The flag that lets an otherwise ordinary tool run or write arbitrary things, if any.

    An argument known only at run time counts as such a flag for tools that have
    them, since its value cannot be checked.
    """
    for name in program.names:
        check = _FLAG_CHECKS.get(name)
        if check is None:
            continue
        if any(a is None for a in args):
            return "(an argument only known at run time)"
        return check([a for a in args if a is not None])
    return None
