"""Writers for results: ``.json`` (a list of images), ``.jsonl`` (one image a line), ``.csv`` (one row per region).

Output is written to a temporary file beside the target and renamed into place when the writer closes,
normally or on Ctrl-C, so the target is always a complete, valid file for the images done.
With ``resume`` the records already in the target are kept and their images can be skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from .errors import SkinInferError
from .files import default_mode
from .results import ImageResult, csv_columns

FORMATS = (".csv", ".json", ".jsonl")


def read_existing(path: Path) -> list[dict]:
    """Records of an earlier output file (for --resume): JSON/JSONL image records or CSV rows."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".csv":
            return list(csv.DictReader(io.StringIO(text)))
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text) if text.strip() else []
    except (json.JSONDecodeError, csv.Error) as exc:
        raise SkinInferError(
            f"{path}: cannot resume from it, it is not valid {path.suffix[1:].upper()} ({exc}); write to a new file."
        ) from None


class ResultWriter:
    def __init__(self, path: str | Path, heads: list[tuple[str, tuple[str, ...]]], resume: bool = False):
        self.path = Path(path)
        if self.path.suffix.lower() not in FORMATS:
            raise SkinInferError(f"--out {self.path}: unknown format; use a .csv, .json or .jsonl file name.")
        if not self.path.parent.is_dir():
            raise SkinInferError(f"--out {self.path}: folder {self.path.parent} does not exist; create it first.")
        self.kind = self.path.suffix.lower()
        self.columns = csv_columns(heads)
        previous = read_existing(self.path) if resume else []
        if previous and self.kind == ".csv" and list(previous[0]) != self.columns:
            raise SkinInferError(
                f"{self.path}: cannot resume, it has other columns (written with another model?); write to a new file."
            )
        # Failed images are tried again; only successes are kept and skipped.
        self.previous = [r for r in previous if r.get("status") == "ok"]
        self.done = {r["file"] for r in self.previous}
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.chmod(self._tmp, default_mode())
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._count = 0
        if self.kind == ".csv":
            self._csv = csv.DictWriter(self._fh, fieldnames=self.columns, extrasaction="ignore")
            self._csv.writeheader()
            self._csv.writerows(self.previous)
        elif self.kind == ".json":
            self._fh.write("[")
        for record in self.previous if self.kind != ".csv" else []:
            self._write_json(record)

    def _write_json(self, result: dict) -> None:
        text = json.dumps(result, ensure_ascii=False)
        if self.kind == ".jsonl":
            self._fh.write(text + "\n")
        else:
            self._fh.write(("," if self._count else "") + "\n" + text)
        self._count += 1

    def write(self, result: ImageResult) -> None:
        if self.kind == ".csv":
            self._csv.writerows(result.csv_rows())
        else:
            self._write_json(result.to_dict())
        self._fh.flush()

    def close(self) -> None:
        """Finish the file and move it into place (also after Ctrl-C: what was written is valid)."""
        if self._fh.closed:
            return
        if self.kind == ".json":
            self._fh.write("\n]\n")
        self._fh.close()
        os.replace(self._tmp, self.path)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
