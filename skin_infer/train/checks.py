"""What every trainer checks in its data before the first epoch (``skin train``, ``skin train-parser``): missing
files, labels that are not labels, heads with fewer than two classes; and the class counts per split it prints.

A refusal is a ``DataError`` naming the file and the fix (the CLI exits 2); a few missing files are a warning.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

NAN_LIKE = {"", "nan", "none", "null", "na", "n/a", "-"}  # compared lower-case, stripped
MAX_MISSING_SHARE = 0.05  # above this share of missing files, the data is refused, not trained on
SHOWN = 5  # paths named in a message


class DataError(ValueError):
    """The data cannot be trained on; the message names the file and what to do."""


def nan_like(value: str) -> bool:
    return value.strip().lower() in NAN_LIKE


def unlabelled_rows(values: list[tuple[int, str, str]], source: Path, skip: bool) -> int:
    """(row number, column, value) of NaN-like labels: refused unless ``skip`` (then they are left out); returns
    how many were left out."""
    if values and not skip:
        shown = ", ".join(f"row {row} {column}={value!r}" for row, column, value in values[:SHOWN])
        raise DataError(
            f"{source}: {len(values)} row(s) have no label ({shown}{' ...' if len(values) > SHOWN else ''}); "
            "fill them in, or add --skip-unlabelled to leave those rows out."
        )
    return len(values)


def existing_files(paths: list[Path], source: Path, what: str = "image") -> set[Path]:
    """The paths that exist; refuses when all, or more than ``MAX_MISSING_SHARE`` of them, are missing."""
    missing = [p for p in paths if not p.is_file()]
    if not missing:
        return set(paths)
    shown = ", ".join(str(p) for p in missing[:SHOWN]) + (" ..." if len(missing) > SHOWN else "")
    if len(missing) == len(paths) or len(missing) > MAX_MISSING_SHARE * len(paths):
        raise DataError(
            f"{source}: {len(missing)} of {len(paths)} {what} file(s) are missing ({shown}); check the paths "
            f"(relative to --data) — at most {MAX_MISSING_SHARE:.0%} may be missing."
        )
    from rich.console import Console

    Console(stderr=True, markup=False).print(
        f"warning: {source}: {len(missing)} of {len(paths)} {what} file(s) are missing and left out ({shown})",
        style="yellow",
        highlight=False,
    )
    return set(paths) - set(missing)


def two_classes(heads: list[dict], source: Path) -> None:
    for head in heads:
        if len(head["labels"]) < 2:
            raise DataError(
                f"{source}: head {head['name']!r} has {len(head['labels'])} class(es) ({head['labels']}); a "
                "classifier needs two or more. Check --label and the CSV."
            )


def class_table(heads: list[dict], by_split: dict[str, list], target) -> str:
    """Per head, the count of each class in each split (printed before the first epoch)."""
    lines = []
    for h, head in enumerate(heads):
        lines.append(f"{head['name']}: " + ", ".join(f"{s} {len(rows)}" for s, rows in by_split.items() if rows))
        for split, rows in by_split.items():
            if rows:
                counts = Counter(target(r, h) for r in rows)
                text = ", ".join(f"{label} {counts.get(i, 0)}" for i, label in enumerate(head["labels"]))
                lines.append(f"  {split}: {text}")
    return "\n".join(lines)
