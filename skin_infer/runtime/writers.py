"""Writers for results: ``.json`` (a list of images), ``.jsonl`` (one image a line), ``.csv`` (one row per region).

Results go to a progress file beside the target, ``.NAME.partial``, flushed after every image, and are renamed
into place when the writer closes (normally, on Ctrl-C or on SIGTERM): the target is always a complete, valid
file. A run killed outright (``kill -9``, power loss) leaves the progress file, which ``--resume`` reads: every
image finished before the kill is kept, a record cut mid-write is dropped and its image analysed again.

Every record is one line (a JSON object, or the CSV rows of one image), so a cut is always at the end.
CSV text cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) get a leading
``'``, as OWASP recommends; resume strips it again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .errors import SkinInferError
from .files import default_mode
from .results import ImageResult, csv_columns

FORMATS = (".csv", ".json", ".jsonl")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def progress_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def same_file_key(file: str) -> str:
    """How resume recognises an image: its real path, so `photos/a.jpg`, `./photos/a.jpg` and the absolute
    path are one image."""
    return os.path.realpath(file)


def _neutral(value):
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _unneutral(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SkinInferError(f"{path}: cannot resume from it, it is not UTF-8 text; write to a new file.") from None
    except OSError as exc:
        raise SkinInferError(f"{path}: cannot be read to resume ({exc.strerror or exc}).") from None


def _json_records(text: str, path: Path) -> list[dict]:
    """Image records, one per line (JSONL, or the JSON list this writer writes); a cut last line is dropped."""
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):  # a whole JSON document, perhaps pretty-printed
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError:
            records = None
        if records is not None:
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise SkinInferError(f"{path}: cannot resume, it is JSON but not a list of image records.")
            return records
    records, lines = [], [line.strip().lstrip(",").strip() for line in text.splitlines()]
    lines = [line for line in lines if line not in ("", "[", "]")]
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # the record being written when the run stopped
                break
            raise SkinInferError(
                f"{path}: cannot resume, line {i + 1} is not a JSON image record; write to a new file."
            ) from None
        if not isinstance(record, dict) or "file" not in record or "status" not in record:
            raise SkinInferError(f"{path}: cannot resume, it holds something other than image records.")
        records.append(record)
    return records


def _csv_rows(text: str, path: Path, columns: list[str], stopped: bool) -> list[dict]:
    """CSV rows of whole images: an image with a malformed row loses all its rows (it is analysed again), and
    so does the last image of a ``stopped`` run's progress file, whose rows may have been cut at any point."""
    try:
        header, *rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise SkinInferError(f"{path}: cannot resume, it is not valid CSV ({exc}); write to a new file.") from None
    except ValueError:  # empty file
        return []
    if header != columns:
        raise SkinInferError(
            f"{path}: cannot resume, it has other columns (written with another model?); write to a new file."
        )
    records, damaged = [], set()
    for row in rows:
        if len(row) == len(columns):
            records.append({c: _unneutral(v) for c, v in zip(columns, row, strict=True)})
        elif row:
            damaged.add(_unneutral(row[0]))
    if (stopped or not text.endswith(("\n", "\r"))) and records:  # a cut can fall between an image's rows
        damaged.add(records[-1]["file"])
    return [r for r in records if r["file"] not in damaged]


def _check_heads(records: list[dict], heads: list[tuple[str, tuple[str, ...]]], path: Path) -> None:
    want = {name for name, _ in heads}
    for record in records:
        for region in record.get("regions") or []:
            got = set((region.get("predictions") or {}) if isinstance(region, dict) else ())
            if got and got != want:
                raise SkinInferError(
                    f"{path}: cannot resume, it was written with another model (heads {sorted(got)}, this run "
                    f"has {sorted(want) or 'none'}); write to a new file."
                )


class ResultWriter:
    def __init__(self, path: str | Path, heads: list[tuple[str, tuple[str, ...]]], resume: bool = False):
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in FORMATS:
            raise SkinInferError(f"--out {self.path}: unknown format; use a .csv, .json or .jsonl file name.")
        if not self.path.parent.is_dir():
            raise SkinInferError(f"--out {self.path}: folder {self.path.parent} does not exist; create it first.")
        if self.path.is_dir():
            raise SkinInferError(f"--out {self.path}: is a folder; give a file name (results.csv).")
        if self.path.exists() and not self.path.is_file():
            raise SkinInferError(f"--out {self.path}: is not a regular file; give a file name (results.csv).")
        if not os.access(self.path.parent, os.W_OK):
            raise SkinInferError(f"--out {self.path}: folder {self.path.parent} is not writable.")
        self.columns = csv_columns(heads)
        self._progress = progress_path(self.path)
        previous = self._previous(heads) if resume else []
        # Failed images are tried again; only successes are kept and skipped.
        self.previous = [r for r in previous if r.get("status") == "ok"]
        self.done = {same_file_key(r["file"]) for r in self.previous}
        fd = os.open(self._progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, default_mode())
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._count = 0
        if self.kind == ".csv":
            self._csv = csv.writer(self._fh)
            self._csv.writerow(self.columns)
            self._csv.writerows([_neutral(r.get(c, "")) for c in self.columns] for r in self.previous)
        elif self.kind == ".json":
            self._fh.write("[")
        for record in self.previous if self.kind != ".csv" else []:
            self._write_json(record)
        self._fh.flush()

    def _previous(self, heads) -> list[dict]:
        """What an earlier run finished: its progress file when it was stopped before closing, else the target."""
        source = self._progress if self._progress.is_file() else self.path
        if not source.is_file():
            return []
        text = _read_text(source)
        if self.kind == ".csv":
            return _csv_rows(text, source, self.columns, stopped=source == self._progress)
        if self.kind == ".json" and not text.lstrip().startswith("["):
            raise SkinInferError(f"{source}: cannot resume, it is not a list of image records; write to a new file.")
        records = _json_records(text, source)
        _check_heads(records, heads, source)
        return records

    def _write_json(self, result: dict) -> None:
        text = json.dumps(result, ensure_ascii=False, allow_nan=False)  # strict JSON: NaN never reaches a file
        if self.kind == ".jsonl":
            self._fh.write(text + "\n")
        else:
            self._fh.write(("," if self._count else "") + "\n" + text)
        self._count += 1

    def write(self, result: ImageResult) -> None:
        if self.kind == ".csv":
            rows = result.csv_rows()
            self._csv.writerows([_neutral(r.get(c, "")) for c in self.columns] for r in rows)
        else:
            self._write_json(result.to_dict())
        self._fh.flush()

    def close(self) -> None:
        """Finish the file and move it into place (also after Ctrl-C or SIGTERM: what was written is valid)."""
        if self._fh.closed:
            return
        if self.kind == ".json":
            self._fh.write("\n]\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._progress, self.path)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
