"""`titus completion bash`: a bash completion script made from the command table, so every
command and option added to the table completes without editing the script.

Load it with `source <(titus completion bash)` (or save it under
/etc/bash_completion.d/titus).
"""

from __future__ import annotations

import argparse

from titus.cli.commands import ALIASES, COMMANDS, RESOURCES, Outcome, command

#: The daemons `titus` runs besides the client commands (cli/main.py).
DAEMONS = ("local", "api", "master", "agent")
COMMON = ("--url", "--json", "--caller", "--token-file", "--help")


def bash_script() -> str:
    resources = sorted({*RESOURCES, *DAEMONS, *ALIASES})
    actions: dict[str, list[str]] = {}
    options: dict[str, set[str]] = {}
    for (resource, action), cmd in COMMANDS.items():
        actions.setdefault(resource, []).append(action)
        flags = {f for a in cmd.args for f in a.flags if f.startswith("--")}
        options[f"{resource} {action}"] = flags | set(COMMON)
    action_cases = "\n".join(
        f'      {r}) words="{" ".join(sorted(a))}" ;;' for r, a in sorted(actions.items())
    )
    option_cases = "\n".join(
        f'      "{key}") words="{" ".join(sorted(flags))}" ;;'
        for key, flags in sorted(options.items())
    )
    return f"""# bash completion for titus (made by `titus completion bash`)
_titus() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="{" ".join(resources)}"
  elif [ "$COMP_CWORD" -eq 2 ]; then
    case "${{COMP_WORDS[1]}}" in
{action_cases}
    esac
  elif [[ "$cur" == -* ]]; then
    case "${{COMP_WORDS[1]}} ${{COMP_WORDS[2]}}" in
{option_cases}
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _titus titus
"""


@command("completion", "bash", "print a bash completion script: source <(titus completion bash)")
def bash(api: object, args: argparse.Namespace) -> Outcome:
    script = bash_script()
    return script, script
