"""The tool policy as pure functions: request + policy -> decision, rule and plan."""

from __future__ import annotations

import pytest

from phoenix_tools import policy, programs
from phoenix_tools.policy import PolicyOptions, ToolPolicy, TwinPolicy
from phoenix_tools.policy_store import PolicyFileError, parse_policy

DEFAULT = policy.default_policy()
OPEN = PolicyOptions()
SAFE = PolicyOptions(safe_mode=True)
BYPASS = PolicyOptions(allow_restricted=True)
LAB = ToolPolicy(
    twins={
        "lab": TwinPolicy(allowed=frozenset({"*"}), programs=frozenset({"*", "python3", "find"})),
        "narrow": TwinPolicy(
            allowed=frozenset({"command_exec", "ls"}), programs=frozenset({"ls", "grep", "echo"})
        ),
        "paths": TwinPolicy(
            allowed=frozenset({"command_exec"}), programs=frozenset({"/usr/bin/ls"})
        ),
    }
)


def decide(
    twin: str, command: str, *args: str, doc: ToolPolicy = DEFAULT, options: PolicyOptions = OPEN
) -> policy.Evaluation:
    return policy.evaluate(twin, command, args, doc, options)


def shell(twin: str, line: str, **kw: object) -> policy.PolicyDecision:
    return decide(twin, "command_exec", line, **kw).decision  # type: ignore[arg-type]


# --- the original's default policy, unchanged behaviour -------------------------------------


def test_default_policy_lets_aegis_run_any_plain_program() -> None:
    result = decide("twin-aegis", "ls", "-la")
    assert result.decision.allowed
    assert result.plan is not None
    assert result.plan.argv == ("/usr/bin/ls", "-la")


def test_default_policy_lets_sentinel_use_its_three_tools() -> None:
    for tool, args in (
        ("command_exec", ("ls -la",)),
        ("file_write", ("a", "b")),
        ("vector_query", ("q",)),
    ):
        assert decide("twin-sentinel", tool, *args).decision.allowed, tool


def test_sentinel_may_not_run_a_program_directly_as_in_the_original() -> None:
    decision = decide("twin-sentinel", "ls").decision
    assert not decision.allowed
    assert decision.reason == "Twin 'twin-sentinel' is not authorized to execute 'ls'"
    assert decision.rule == "not-allowed:ls"


def test_trace_may_only_query_memory() -> None:
    assert decide("twin-trace", "vector_query", "x").decision.allowed
    decision = shell("twin-trace", "ls")
    assert decision.reason == "Twin 'twin-trace' is not authorized to execute 'command_exec'"


@pytest.mark.parametrize("name", ["rm", "delete", "format", "shutdown", "reboot"])
def test_restricted_tool_names_are_denied_with_the_original_wording(name: str) -> None:
    decision = decide("twin-aegis", name).decision
    assert not decision.allowed
    assert decision.reason == f"Command '{name}' is restricted"
    assert decision.rule == f"restricted:{name}"


def test_safe_mode_wording_for_restricted() -> None:
    decision = decide("twin-aegis", "rm", options=SAFE).decision
    assert decision.reason == "Command 'rm' is restricted in safe mode"


def test_unknown_twin_has_no_policy() -> None:
    assert decide("user_0123456789abcdef", "ls").decision.rule.startswith("unknown-twin")


def test_star_twin_entry_covers_unlisted_twins() -> None:
    doc = ToolPolicy(twins={"*": TwinPolicy(allowed=frozenset({"vector_query"}))})
    assert decide("user_0123456789abcdef", "vector_query", "q", doc=doc).decision.allowed


# --- command_exec: every program of the line is checked (defect 5) ---------------------------


@pytest.mark.parametrize(
    "line",
    [
        "rm -rf /",
        "ls && rm -rf /",
        "ls; rm x",
        "ls || rm x",
        "ls | rm x",
        "echo $(rm x)",
        "echo `rm x`",
        "(rm x)",
        "{ rm x; }",
        "ls > $(rm x)",
        "sleep 1 & rm x",
        "/bin/rm x",
        "/usr/bin/../bin/rm x",
        "'r''m' x",
        '"rm" x',
    ],
)
def test_restricted_program_anywhere_in_a_shell_line_is_denied(line: str) -> None:
    decision = shell("twin-aegis", line)
    assert not decision.allowed
    assert decision.rule == "restricted:rm"


def test_allow_restricted_commands_bypasses_the_restricted_list() -> None:
    assert shell("twin-aegis", "rm -f x", options=BYPASS).allowed


def test_safe_mode_makes_the_restricted_list_unbypassable() -> None:
    options = PolicyOptions(safe_mode=True, allow_restricted=True)
    assert shell("twin-aegis", "rm -f x", options=options).rule == "restricted:rm"
    assert not decide("twin-aegis", "rm", options=options).decision.allowed


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("sh -c 'rm x'", "interpreter:sh"),
        ("ls | bash", "interpreter:bash"),
        ("python3 -c 'print(1)'", "interpreter:python3"),
        ("/usr/bin/python3.11 -V", "interpreter:/usr/bin/python3.11"),
        ("perl -e 1", "interpreter:perl"),
        ("env ls", "interpreter:env"),
        ("xargs ls", "interpreter:xargs"),
        ("awk 'BEGIN{system(\"id\")}'", "interpreter:awk"),
        ("eval ls", "interpreter:eval"),
        ("exec ls", "interpreter:exec"),
        ("command ls", "interpreter:command"),
        ("timeout 1 ls", "interpreter:timeout"),
        ("nohup ls", "interpreter:nohup"),
        ("sudo ls", "interpreter:sudo"),
    ],
)
def test_interpreters_are_refused_unless_named_explicitly(line: str, rule: str) -> None:
    decision = shell("twin-aegis", line)
    assert not decision.allowed
    assert decision.rule == rule
    assert "arbitrary code" in decision.reason


def test_an_explicitly_named_interpreter_is_allowed_outside_safe_mode() -> None:
    assert shell("lab", "python3 -c 'print(1)'", doc=LAB).allowed
    assert decide("lab", "python3", "-c", "1", doc=LAB).decision.allowed
    assert not shell("lab", "python3 -c 1", doc=LAB, options=SAFE).allowed


@pytest.mark.parametrize(
    ("line", "program"),
    [
        ("find . -exec id ;", "find"),
        ("find . -execdir id ;", "find"),
        ("find . -delete", "find"),
        ("find . -fprint /work/x", "find"),
        ("find . -ok id ;", "find"),
        ("git -c core.pager=id log", "git"),
        ("git --config-env=core.pager=X log", "git"),
        ("git diff --ext-diff", "git"),
        ("tar -cf x.tar --to-command=id .", "tar"),
        ("tar -I id -cf x .", "tar"),
        ("sort --compress-program=id x", "sort"),
        ("split --filter=id x", "split"),
        ("sed -e 1e x", "sed"),
        ("sed s/a/b/w/tmp/x f", "sed"),
        ("find . $X", "find"),
        ("find . *", "find"),
    ],
)
def test_exec_capable_flags_on_ordinary_tools_are_not_auto_allowed(line: str, program: str) -> None:
    decision = shell("twin-aegis", line)
    assert not decision.allowed
    assert decision.rule == f"exec-capable:{program}"


def test_plain_uses_of_flag_checked_tools_are_allowed() -> None:
    for line in ("find . -name x", "git status", "sed -n 2p f", "tar -tf x.tar"):
        assert shell("twin-aegis", line).allowed, line


def test_naming_a_tool_explicitly_trusts_its_exec_flags_outside_safe_mode() -> None:
    assert shell("lab", "find . -exec ls ;", doc=LAB).allowed
    assert not shell("lab", "find . -exec ls ;", doc=LAB, options=SAFE).allowed


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("X=1 ls", "variable assignments"),
        ("LD_PRELOAD=/work/x.so ls", "variable assignments"),
        ("PATH=/work:/usr/bin ls", "variable assignments"),
        ("cat <<EOF\nx\nEOF", "'<<'"),
        ("for i in 1; do ls; done", "for"),
        ("while true; do ls; done", "while"),
        ("if true; then ls; fi", "if"),
        ("f() { ls; }; f", "function"),
        ("diff <(ls) x", "process substitution"),
        ("$CMD x", "literal word"),
        ("$(echo ls)", "literal word"),
        ("l* x", "literal word"),
        ("\\rm x", "literal word"),
        ("ls &> x", "&>"),
        ("[[ -f x ]]", "[["),
        ("ls 'unterminated", "could not be parsed"),
        ("echo ${x:-$(rm x)}", "plain $name"),
        ("echo ${x:-`rm x`}", "plain $name"),
        ("echo ${x/a/$(reboot)}", "plain $name"),
        ("echo $'\\x41'", "plain $name"),
        ("echo $((1+2))", "could not be parsed"),
        ("", "empty"),
    ],
)
def test_unreadable_or_complex_shell_syntax_is_denied_with_the_reason(
    line: str, fragment: str
) -> None:
    decision = shell("twin-aegis", line)
    assert not decision.allowed
    assert decision.rule == "shell-syntax"
    assert fragment in decision.reason


def test_a_plain_pipeline_of_allowed_programs_runs_under_sh() -> None:
    result = decide("twin-sentinel", "command_exec", "ls -la | grep x && echo ok > out.txt")
    assert result.decision.allowed
    assert result.plan is not None
    assert result.plan.argv == ("/bin/sh", "-c", "ls -la | grep x && echo ok > out.txt")
    assert "/usr/bin/grep" in result.plan.programs_checked


def test_argument_words_may_use_expansions_for_ordinary_programs() -> None:
    assert shell("twin-aegis", "echo $HOME ${HOME} $1 $? ~ *.txt").allowed


def test_default_deny_for_programs_not_listed() -> None:
    decision = shell("narrow", "cat x", doc=LAB)
    assert decision.rule == "default-deny:cat"
    assert shell("narrow", "ls | grep x", doc=LAB).allowed


def test_absolute_path_entries_match_the_resolved_program() -> None:
    assert shell("paths", "ls", doc=LAB).allowed
    assert shell("paths", "/bin/ls", doc=LAB).allowed
    assert shell("paths", "dir", doc=LAB).rule == "default-deny:dir"


# --- argv[0] tricks (A4) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["r\u0435m", "rm\u00a0", "rm ", " rm", "l\u0455", "ls\t", "rm\u200b", "\uff52\uff4d"],
)
def test_lookalike_and_whitespace_program_names_are_refused(name: str) -> None:
    direct = decide("twin-aegis", name).decision
    assert not direct.allowed
    assert direct.rule in ("invalid-program-name", f"restricted:{name}")
    assert direct.rule == "invalid-program-name"
    quoted = shell("twin-aegis", f"'{name}' x")
    assert not quoted.allowed


@pytest.mark.parametrize(
    "name",
    ["/tmp/evil/git", "/work/git", "./git", "../work/ls", "/proc/self/exe"],  # noqa: S108 - a path refused
)
def test_programs_outside_the_read_only_system_tree_are_refused(name: str) -> None:
    decision = decide("twin-aegis", name).decision
    assert not decision.allowed
    assert decision.rule.startswith("outside-system-path:")


@pytest.mark.parametrize(
    "line",
    [
        "cd /tmp/x && ../usr/bin/ls -c 'import os'",  # /tmp/usr/bin/ls: a copied python3
        "(cd /tmp; usr/bin/ls)",
        "../../usr/bin/ls",
        "bin/ls",
    ],
)
def test_relative_program_paths_in_shell_lines_are_refused(line: str) -> None:
    """After a `cd`, a relative path no longer means what the policy resolved."""
    decision = shell("twin-aegis", line)
    assert not decision.allowed
    assert decision.rule.startswith("relative-program-path:")


@pytest.mark.parametrize(
    "program", ["/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2", "ld.so"]
)
def test_the_dynamic_loader_counts_as_an_interpreter(program: str) -> None:
    decision = shell("twin-aegis", f"{program} /work/evil")
    assert not decision.allowed
    assert decision.rule == f"interpreter:{program}"


@pytest.mark.parametrize(
    "line",
    [
        "$(" * 300 + "ls" + ")" * 300,
        "(" * 40 + "rm x" + ")" * 40,
        "ls <<<x",
        "case x in x) ls;; esac",
        "select x in a; do ls; done",
        "coproc ls",
        "! rm x",
        "time rm x",
        "ls ${!x}",
        "ls $[1+1]",
        "ls >(rm x)",
        "echo \
$(rm x)",
        "ab",
        "ls `",
        "))",
        ";;",
        "&",
        "|",
    ],
)
def test_odd_shell_input_is_denied_cleanly(line: str) -> None:
    decision = shell("twin-aegis", line)
    assert not decision.allowed
    assert decision.reason


def test_dot_dot_paths_resolve_to_the_canonical_program() -> None:
    result = decide("twin-aegis", "../../usr/bin/ls")
    assert result.decision.allowed
    assert result.plan is not None
    assert result.plan.argv[0] == "/usr/bin/ls"


def test_a_symlinked_name_is_judged_by_its_target_too() -> None:
    # /usr/bin/python3 -> python3.11: both names count, so either entry catches it.
    names = programs.resolve("python3").names
    assert {"python3", "python3.11"} <= names


def test_a_program_that_does_not_exist_plans_a_127() -> None:
    result = decide("twin-aegis", "no-such-program-xyz")
    assert result.decision.allowed
    assert result.plan is not None
    assert result.plan.program is not None
    assert not result.plan.program.found


def test_builtins_exist_only_in_shell_lines() -> None:
    assert shell("twin-aegis", "cd /work && pwd").allowed
    direct = decide("twin-aegis", "cd")
    assert direct.plan is not None
    assert direct.plan.program is not None
    assert not direct.plan.program.found  # exec'd directly, there is no cd: a 127
    echo = decide("twin-aegis", "echo", "x")
    assert echo.plan is not None
    assert echo.plan.argv == ("/usr/bin/echo", "x")


# --- SAFE_MODE ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", ["ls; id", "ls | grep x", "echo $(id)", "ls > f", "ls *", "echo ~"]
)
def test_safe_mode_refuses_every_shell_metacharacter(line: str) -> None:
    decision = shell("twin-aegis", line, options=SAFE)
    assert decision.rule == "shell-syntax"
    assert "SAFE_MODE" in decision.reason


def test_safe_mode_runs_a_plain_line_as_an_argv_without_a_shell() -> None:
    result = decide("twin-aegis", "command_exec", "ls -la 'my dir'", options=SAFE)
    assert result.decision.allowed
    assert result.plan is not None
    assert result.plan.argv == ("/usr/bin/ls", "-la", "my dir")


# --- policy documents -----------------------------------------------------------------------


def test_policy_yaml_and_json_parse_to_the_same_policy() -> None:
    yaml_doc = "restricted: [rm]\ntwins:\n  a: {allowed: [command_exec], programs: [ls]}\n"
    json_doc = (
        '{"restricted": ["rm"], "twins": {"a": {"allowed": ["command_exec"], "programs": ["ls"]}}}'
    )
    assert parse_policy(yaml_doc, source="p.yaml") == parse_policy(json_doc, source="p.json")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("twins: {a: {allowed: [x], colour: red}}", "colour"),
        ("twins: {'../x': {}}", "invalid twin ids"),
        ("- a\n- b", "expected a mapping"),
        ("twins: [", "not valid YAML"),
    ],
)
def test_invalid_policy_documents_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(PolicyFileError, match=r"p\.yaml") as err:
        parse_policy(text, source="p.yaml")
    assert fragment in str(err.value)


def test_twin_restricted_list_adds_to_the_global_one() -> None:
    doc = ToolPolicy(
        twins={
            "a": TwinPolicy(
                allowed=frozenset({"*"}), programs=frozenset({"*"}), restricted=frozenset({"curl"})
            )
        }
    )
    assert shell("a", "curl x", doc=doc).rule == "restricted:curl"
    assert shell("a", "rm x", doc=doc).rule == "restricted:rm"
