"""Normalise the outputs of scripts/json-examples.sh for a before/after diff.

    python scripts/normalise_json.py OUTDIR

Reads every OUTDIR/*.json (one command's stdout each) and writes OUTDIR/normalised/<name>.json with
sorted keys and indentation, after removing what legitimately changes from one run to the next:

- wall-clock times: every key named ``seconds`` or ``seconds_*`` / ``*_seconds`` (``seconds`` of a
  run, ``seconds_mean`` of a report cell) and keys that name a time stamp (``timestamp``, ``date``,
  ``started*``, ``elapsed*``, ``wall*``, ``eta*``); ISO-like date-times inside strings become
  ``<TIME>``;
- absolute paths: the OUTDIR prefix becomes ``<OUT>``, the fixpt checkout (``repo:`` in
  OUTDIR/run-info.txt) ``<REPO>`` and the data root (``FIXPT_DATA:``) ``<DATA>``.

Everything else (scores, residuals, iteration counts, verdicts, configs) is kept exactly: training is
seeded and deterministic on the CPU, so a behaviour-preserving change leaves it identical. A stdout
that is not JSON (a command that failed) is kept as ``{"_stdout_not_json": TEXT}``. The exit codes
(OUTDIR/*.rc) go to normalised/exit-codes.json.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TIME_KEY = re.compile(r"^(seconds|seconds_.*|.*_seconds|timestamp|.*_timestamp|date|started.*|elapsed.*|wall.*|eta.*)$")
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T _]\d{2}[:-]\d{2}[:-]\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def prefixes(out: Path) -> list[tuple[str, str]]:
    """(absolute path, placeholder) pairs, longest first, each as written and as resolved."""
    pairs = [(str(out), "<OUT>"), (str(out.resolve()), "<OUT>")]
    info = out / "run-info.txt"
    if info.exists():
        for line in info.read_text().splitlines():
            key, _, value = line.partition(": ")
            if key in ("repo", "FIXPT_DATA") and value:
                tag = "<REPO>" if key == "repo" else "<DATA>"
                pairs += [(value, tag), (str(Path(value).resolve()), tag)]
    return sorted(set(pairs), key=lambda p: -len(p[0]))


def clean(obj, subs):
    if isinstance(obj, dict):
        return {k: clean(v, subs) for k, v in obj.items() if not TIME_KEY.match(str(k))}
    if isinstance(obj, list):
        return [clean(v, subs) for v in obj]
    if isinstance(obj, str):
        for path, tag in subs:
            obj = obj.replace(path, tag)
        return DATE_TIME.sub("<TIME>", obj)
    return obj


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: {sys.argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0]).absolute()
    files = sorted(out.glob("*.json"))
    if not files:
        print(f"error: no *.json in {out}; run scripts/json-examples.sh {out} first", file=sys.stderr)
        return 2
    subs = prefixes(out)
    dest = out / "normalised"
    dest.mkdir(exist_ok=True)
    for old in dest.glob("*.json"):
        old.unlink()
    for f in files:
        text = f.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = {"_stdout_not_json": text}
        (dest / f.name).write_text(json.dumps(clean(data, subs), sort_keys=True, indent=1) + "\n")
    codes = {rc.stem: int(rc.read_text().strip() or -1) for rc in sorted(out.glob("*.rc"))}
    (dest / "exit-codes.json").write_text(json.dumps(codes, sort_keys=True, indent=1) + "\n")
    print(f"normalised {len(files)} files into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
