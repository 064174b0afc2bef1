"""A seccomp filter for the sandbox, as raw classic BPF for ``bwrap --seccomp FD``.

Default allow; the kernel surfaces an untrusted command has no business with
return EPERM: Flatpak's blocklist (keyrings, mount APIs, namespaces, NUMA,
module loading, ``perf_event_open``, ``TIOCSTI``/``TIOCLINUX``) plus codex's
(``ptrace``, ``process_vm_*``, io_uring). ``clone3`` returns ENOSYS so libc
falls back to ``clone``, whose namespace flags ``--disable-userns`` already
limits. Foreign ABIs (i386 or x32 on x86_64) are refused, since syscall
numbers differ there. Built by hand (about 100 instructions) so no libseccomp
binding is needed.
"""

from __future__ import annotations

import errno
import platform
import struct

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_OFF_NR, _OFF_ARCH, _OFF_ARG1_LO = 0, 4, 24
_LD_ABS_W, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
_X32_BIT = 0x40000000

_DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "syslog",
    "acct",
    "quotactl",
    "move_pages",
    "mbind",
    "get_mempolicy",
    "set_mempolicy",
    "migrate_pages",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "name_to_handle_at",
    "open_by_handle_at",
)

# Syscall numbers from the kernel's uapi headers (unistd_64.h, asm-generic/unistd.h).
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        dict(ptrace=101, process_vm_readv=310, process_vm_writev=311, io_uring_setup=425,
             io_uring_enter=426, io_uring_register=427, keyctl=250, add_key=248,
             request_key=249, bpf=321, perf_event_open=298, mount=165, umount2=166,
             pivot_root=155, chroot=161, open_tree=428, move_mount=429, fsopen=430,
             fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, unshare=272, setns=308,
             syslog=103, acct=163, quotactl=179, move_pages=279, mbind=237, get_mempolicy=239,
             set_mempolicy=238, migrate_pages=256, kexec_load=246, kexec_file_load=320,
             init_module=175, finit_module=313, delete_module=176, userfaultfd=323,
             name_to_handle_at=303, open_by_handle_at=304, uselib=134, modify_ldt=154,
             clone3=435, ioctl=16),
    ),
    "aarch64": (
        0xC00000B7,
        dict(ptrace=117, process_vm_readv=270, process_vm_writev=271, io_uring_setup=425,
             io_uring_enter=426, io_uring_register=427, keyctl=219, add_key=217,
             request_key=218, bpf=280, perf_event_open=241, mount=40, umount2=39,
             pivot_root=41, chroot=51, open_tree=428, move_mount=429, fsopen=430,
             fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, unshare=97, setns=268,
             syslog=116, acct=89, quotactl=60, move_pages=239, mbind=235, get_mempolicy=236,
             set_mempolicy=237, migrate_pages=238, kexec_load=104, kexec_file_load=294,
             init_module=105, finit_module=273, delete_module=106, userfaultfd=282,
             name_to_handle_at=264, open_by_handle_at=265, clone3=435, ioctl=29),
    ),
}  # fmt: skip


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in _ARCHES


def build_filter(machine: str | None = None) -> bytes:
    """The filter program for ``machine`` (default: this host); ValueError if unknown."""
    arch_name = machine or platform.machine()
    if arch_name not in _ARCHES:
        raise ValueError(f"no seccomp syscall table for {arch_name}")
    audit_arch, numbers = _ARCHES[arch_name]
    eperm = _RET_ERRNO | errno.EPERM
    prog = [
        _insn(_LD_ABS_W, 0, 0, _OFF_ARCH),
        _insn(_JEQ_K, 1, 0, audit_arch),
        _insn(_RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(_LD_ABS_W, 0, 0, _OFF_NR),
    ]
    if arch_name == "x86_64":
        prog += [_insn(_JGE_K, 0, 1, _X32_BIT), _insn(_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS)]
    denied = [n for n in (*_DENIED, "uselib", "modify_ldt") if n in numbers]
    for name in dict.fromkeys(denied):
        prog += [_insn(_JEQ_K, 0, 1, numbers[name]), _insn(_RET_K, 0, 0, eperm)]
    prog += [
        _insn(_JEQ_K, 0, 1, numbers["clone3"]),
        _insn(_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        # ioctl(fd, TIOCSTI | TIOCLINUX, ...): the kernel reads cmd as 32 bits, so compare those.
        _insn(_JEQ_K, 0, 5, numbers["ioctl"]),
        _insn(_LD_ABS_W, 0, 0, _OFF_ARG1_LO),
        _insn(_JEQ_K, 0, 1, TIOCSTI),
        _insn(_RET_K, 0, 0, eperm),
        _insn(_JEQ_K, 0, 1, TIOCLINUX),
        _insn(_RET_K, 0, 0, eperm),
        _insn(_RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(prog)
