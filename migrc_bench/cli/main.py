"""The ``migrc-bench`` command: a click group whose subcommands live one per module."""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__, interrupts
from ..errors import UserError

EPILOG = """\b
Examples:
  migrc-bench run                          # replay the bundled default trace and config
  migrc-bench compare app.parquet --engines baseline,migrc --out results/
  migrc-bench check results/ --baseline benchmarks/ci-baseline.json
  migrc-bench plot results/ -o compare.png
  migrc-bench suite --engines baseline,migrc,luf   # every workload, table and plot
  migrc-bench trace gen xsbench -s small -m event -l 20000 -t 4 -o small.parquet
  migrc-bench trace convert lackey.log -o app.parquet
  migrc-bench trace info app.parquet --format json
  migrc-bench config show --set machine.ncpu=4
  migrc-bench config list                  # the bundled configs, usable as --config NAME
  migrc-bench cache                        # where generated traces are kept
"""


# subcommand -> its module, imported when the subcommand is used: `run` reaches its first
# quantum without loading what only `check`, `plot` or `sweep` need (pandas, matplotlib, dask)
COMMANDS = {"run": "run_cmd", "compare": "compare_cmd", "check": "check_cmd", "plot": "plot_cmd",
            "trace": "trace_cmd", "config": "config_cmd", "cache": "cache_cmd", "sweep": "sweep_cmd",
            "suite": "suite_cmd"}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            self.add_command(importlib.import_module(f".{COMMANDS[name]}", __package__).command)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migrc-bench")
def cli() -> None:
    """Replay memory-access traces through per-CPU TLBs, tiering and migration engines."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit status 2, never a traceback."""
    try:
        with interrupts.handled():
            rv = cli.main(args=argv, prog_name="migrc-bench", standalone_mode=False)
        if isinstance(rv, int):  # click returns Exit codes instead of raising when not standalone
            return rv
    except interrupts.Interrupted as exc:
        # temp files are gone by now (every writer removes its own on the way out)
        click.echo(f"migrc-bench: interrupted by {exc.name}; {interrupts.kept()}", err=True)
        return exc.exit_code
    except UserError as exc:
        click.echo(f"migrc-bench: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("migrc-bench: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("migrc-bench: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
