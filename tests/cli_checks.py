"""What the command-line tests share: invoking the app in process, and the one-line error rule (exit 2, one line
on stderr naming the problem, no traceback)."""

from typer.testing import CliRunner

from fixpt.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
