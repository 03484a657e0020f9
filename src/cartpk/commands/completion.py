"""``cartpk completion SHELL``: print the tab-completion script of cartpk for bash, zsh, tcsh,
fish or PowerShell.

Commands, options, their choices and file or folder arguments complete. To install it:

    bash:  cartpk completion bash > ~/.local/share/bash-completion/completions/cartpk
    zsh:   cartpk completion zsh > ~/.zfunc/_cartpk   (with fpath+=(~/.zfunc) in ~/.zshrc)
    tcsh:  cartpk completion tcsh > ~/.cartpk.completion.csh; source it from ~/.tcshrc
    fish:  cartpk completion fish > ~/.config/fish/completions/cartpk.fish
"""

from __future__ import annotations

import argparse

import shtab

from ._console import Console


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "completion",
        help="print the shell tab-completion script (bash, zsh, tcsh, fish, PowerShell)",
        description=__doc__,
    )
    parser.add_argument("shell", choices=shtab.SUPPORTED_SHELLS, help="the shell")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..cli import build_parser

    Console()(shtab.complete(build_parser(), shell=args.shell))
