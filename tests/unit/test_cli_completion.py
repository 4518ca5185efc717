"""`titus completion bash`: the script it prints, loaded into a real bash, completes the
resources, each resource's actions and each command's options from the command table."""

from __future__ import annotations

import contextlib
import io
import subprocess

from titus.cli.main import main


def script() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["completion", "bash"]) == 0
    return out.getvalue()


def complete(text: str, *words: str) -> list[str]:
    """What bash offers for the last of `words` after sourcing the script."""
    line = " ".join(f"'{w}'" for w in ("titus", *words))
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f"{text}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _titus; "
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.split()


def test_bash_completes_resources_actions_and_options() -> None:
    text = script()
    assert complete(text, "j") == ["job"]
    assert "instance-group" in complete(text, "")
    assert complete(text, "job", "sub") == ["submit"]
    assert {"enable", "disable", "kill", "list"} <= set(complete(text, "job", ""))
    assert complete(text, "job", "submit", "x.json", "--wa") == ["--wait"]
    assert complete(text, "job", "attr") == ["attributes"]
    assert complete(text, "job", "attributes", "JOB", "--uns") == ["--unset"]
    assert "--token-file" in complete(text, "host", "list", "--")
