"""Inputs beyond image files: ``http(s)://`` URLs, standard input, video files, webcams and streams, and faces
followed across the frames of a video.

A video (or a camera, or an ``rtsp://`` stream) becomes one ``NamedSource`` per analysed frame, every ``every``
seconds, named by the video's path with its ``frame`` index and ``time_s``; ``track_faces`` gives each face a
``track`` id that follows it from frame to frame (greedy IoU matching), and ``track_summary`` the median measures
and grades per person.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
STREAM_SCHEMES = ("rtsp://", "rtmp://")
URL_SCHEMES = ("http://", "https://")
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 20.0
TRACK_IOU = 0.3  # a face in the next frame is the same person when their boxes overlap this much


@dataclass
class NamedSource:
    """An image with a name other than a path: bytes (a download, standard input) or a decoded frame."""

    name: str
    data: bytes | None = None
    image: np.ndarray | None = None  # BGR uint8
    frame: int | None = None
    time_s: float | None = None
    error: str | None = None  # a source that could not be opened: its result is this error


def source_stream(entries: list[str], every: float, done: set[str], stdin=None) -> Iterator:
    """What the analysis reads, in order: image paths and URLs as they are, ``-`` as the bytes of standard input,
    videos, cameras (a number) and streams as their frames; what ``done`` holds (``writers.record_key``) skipped."""
    from .writers import record_key

    for entry in entries:
        if entry == "-":
            if "<stdin>" not in done:
                yield NamedSource("<stdin>", data=(stdin.read() if stdin is not None else b""))
        elif is_video(entry) or entry.isdigit():
            try:
                for frame in video_frames(int(entry) if entry.isdigit() else entry, every):
                    if record_key(frame.name, frame.frame) not in done:
                        yield frame
            except ImageError as exc:
                yield NamedSource(entry, error=str(exc))
        elif record_key(entry) not in done:
            yield entry


def is_url(text: str) -> bool:
    return text.lower().startswith(URL_SCHEMES)


def is_video(text: str) -> bool:
    return Path(text).suffix.lower() in VIDEO_SUFFIXES or text.lower().startswith(STREAM_SCHEMES)


def fetch(url: str, max_bytes: int = MAX_DOWNLOAD_BYTES, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The bytes at ``url``, at most ``max_bytes``, each read within ``timeout``; ImageError naming the URL."""
    import urllib.error  # here, not at the top: with ssl and http they cost every run 20 ms of its start
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http and https only)
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise ImageError(f"{url}: {int(length):,} bytes is above the download limit of {max_bytes:,}")
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise ImageError(f"{url}: the server answered {exc.code} {exc.reason}; check the address") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageError(f"{url}: could not be downloaded ({reason}); check the address and the network") from None
    if len(data) > max_bytes:
        raise ImageError(f"{url}: larger than the download limit of {max_bytes:,} bytes")
    return data


def video_frames(source: str | int, every: float = 1.0) -> Iterator[NamedSource]:
    """One frame every ``every`` seconds of a video file, a camera index or a stream, until it ends (a camera or
    a stream: until the run is stopped). ImageError when it cannot be opened."""
    import cv2

    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ImageError(
            f"{source}: cannot be opened as a video (a file OpenCV's FFmpeg reads, a camera index or a stream URL)"
        )
    name = str(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    live = isinstance(source, int) or name.lower().startswith(STREAM_SCHEMES)
    step = max(1, round(every * fps)) if fps > 0 and not live else 1
    index = 0
    next_time = 0.0
    try:
        while True:
            if not capture.grab():
                break
            t = index / fps if fps > 0 and not live else capture.get(cv2.CAP_PROP_POS_MSEC) / 1e3
            wanted = index % step == 0 if not live else t + 1e-9 >= next_time
            if wanted:
                ok, image = capture.retrieve()
                if ok:
                    yield NamedSource(name, image=image, frame=index, time_s=round(t, 3))
                    next_time = t + every
            index += 1
    finally:
        capture.release()


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union else 0.0


def track_faces(results: Iterable) -> Iterator:
    """Give each face of consecutive frames of one video a ``track`` id (the best-overlapping face of the previous
    analysed frame keeps its id; others start new tracks); photos pass through unchanged."""
    previous: dict[str, list[tuple[tuple, int]]] = {}
    next_id: dict[str, int] = {}
    for result in results:
        if result.frame is None or not result.ok:
            yield result
            continue
        before = previous.get(result.file, [])
        taken, now = set(), []
        pairs = sorted(((_iou(f.box, box), i, track) for i, f in enumerate(result.faces) for box, track in before),
                       reverse=True)  # fmt: skip
        assigned: dict[int, int] = {}
        for overlap, i, track in pairs:
            if overlap >= TRACK_IOU and i not in assigned and track not in taken:
                assigned[i] = track
                taken.add(track)
        for i, face in enumerate(result.faces):
            if i not in assigned:
                assigned[i] = next_id.get(result.file, 0)
                next_id[result.file] = assigned[i] + 1
            face.track = assigned[i]
            now.append((face.box, face.track))
        previous[result.file] = now
        yield result


class TrackSummary:
    """Per video and track: the frames a face was seen in and the median of its face_skin measures and grades."""

    def __init__(self):
        self.tracks: dict[tuple[str, int], dict] = {}

    def add(self, result) -> None:
        if result.frame is None or not result.ok:
            return
        for region in result.regions:
            if region.name != "face_skin" or region.face_index is None:
                continue
            face = result.faces[region.face_index]
            entry = self.tracks.setdefault((result.file, face.track), {"times": [], "values": {}})
            entry["times"].append(result.time_s)
            for key, value in (region.measures or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    entry["values"].setdefault(key, []).append(value)
            for head, prediction in region.predictions.items():
                if not prediction.uncertain:
                    grade = prediction.expected if prediction.expected is not None else prediction.score
                    entry["values"].setdefault(f"{head}.{'expected' if prediction.expected is not None else 'score'}",
                                               []).append(grade)  # fmt: skip

    def to_list(self) -> list[dict]:
        return [
            {"file": file, "track": track, "frames": len(e["times"]), "first_s": min(e["times"]),
             "last_s": max(e["times"]),
             "median": {k: round(statistics.median(v), 3) for k, v in sorted(e["values"].items())}}
            for (file, track), e in sorted(self.tracks.items())
        ]  # fmt: skip
