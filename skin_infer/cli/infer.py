"""``skin-infer PATHS`` (also ``skin infer``): analyse photos and folders, print a table or write results."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..runtime.options import AnalysisOptions
from .common import app, err, fail, need_extra, print_version, warn
from .options import analysis_options


def _demo_photo(folder: Path) -> str:
    try:
        from skimage import data
    except ImportError:
        raise fail("--demo needs scikit-image for its sample photo: pip install 'skin-infer[demo]'") from None
    import cv2

    path = folder / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return str(path)


def new_run_dir(project: Path, name: str | None, exist_ok: bool) -> Path:
    """PROJECT/NAME, or PROJECT/<the next number>; an existing NAME only with --exist-ok."""
    from ..runtime.errors import SkinInferError

    if name is None:
        taken = [int(p.name) for p in project.glob("*") if p.name.isdigit()] if project.is_dir() else []
        name = str(max(taken, default=0) + 1)
    folder = project / name
    if folder.exists() and not exist_ok:
        raise SkinInferError(f"{folder} already exists: give another --name, or --exist-ok to write into it.")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _answer(prediction) -> str:
    if prediction is None:
        return "-"
    return f"{prediction.label} {prediction.score:.2f}" + (" uncertain" if prediction.uncertain else "")


def _wrinkle_cell(region) -> str:
    """``count (density of the skin)``, and the 0-100 score on the region the detector ran on."""
    m = region.measures or {}
    if m.get("wrinkle_count") is None:
        return "-"
    text = f"{m['wrinkle_count']} ({m['wrinkle_density']:.0%})" if m.get("wrinkle_density") is not None else "-"
    return text + (f" score {region.wrinkle_score:.0f}" if region.wrinkle_score is not None else "")


def print_table(result) -> None:
    """One photo's regions, measures and the answers of the models that ran on it, then why the others did not."""
    out = Console(width=None if sys.stdout.isatty() else 160)  # piped into a file or a log: do not cut cells
    out.print(
        f"[bold]{escape(result.file)}[/]  {result.width}x{result.height}  "
        f"{len(result.faces)} face(s)" + ("" if result.faces else " — analysed as a whole image"),
        highlight=False,
    )
    heads = list(dict.fromkeys(h for r in result.regions for h in r.predictions))
    notes = any(r.note for r in result.regions)
    wrinkles = any((r.measures or {}).get("wrinkle_count") is not None for r in result.regions)
    table = Table(show_header=True, header_style="bold")
    columns = ["face", "region", "box x,y,w,h", "skin", "ITA°", "tone", "a*", *(["wrinkles"] if wrinkles else [])]
    for col in [*columns, *heads] + (["note"] if notes else []):
        table.add_column(col)
    for region in result.regions:
        m = region.measures or {}
        preds = [_answer(region.predictions.get(h)) for h in heads]
        table.add_row(
            "-" if region.face_index is None else str(region.face_index),
            region.name,
            ",".join(map(str, region.box)) if region.box else "not visible",
            f"{region.skin_fraction:.0%}",
            *(str(v) if (v := m.get(k)) is not None else "-" for k in ("ita_deg", "skin_tone", "redness_a")),
            *([_wrinkle_cell(region)] if wrinkles else []),
            *preds,
            *([region.note or ""] if notes else []),
        )
    out.print(table)
    explained = ["skin: share of the region that is skin", "ITA°: skin tone angle (higher is lighter)",
                 "a*: redness, CIELAB a*"]  # fmt: skip
    if wrinkles:
        explained.append("wrinkles: boxes found (share of the skin they cover), and the face's 0-100 score")
    explained += [f"{h}: the model's answer and its confidence (0-1; uncertain: below its measured threshold)"
                  for h in heads]  # fmt: skip
    out.print("[dim]" + escape("; ".join(explained)) + "[/]", highlight=False)
    for model, why in result.not_run.items():
        out.print(f"[dim]{escape(model)}: {escape(why)}[/]", highlight=False)


@analysis_options()
def infer(
    paths: Annotated[list[str] | None, typer.Argument(help="Photos and/or folders to analyse.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write results to .csv, .json, .jsonl or .parquet.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")] = False,
    save_overlays: Annotated[Path | None, typer.Option(help="Folder for overlay pictures.")] = None,
    save_masks: Annotated[
        Path | None, typer.Option(help="Folder for the face parse: a PNG of label ids per image, and labels.json.")
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    resume: Annotated[bool, typer.Option(help="Skip images already in --out and keep their results.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out instead of refusing it.")] = False,
    demo: Annotated[bool, typer.Option(help="Analyse a sample portrait (needs the \\[demo] extra).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table and no progress bar.")] = False,
    every: Annotated[
        float, typer.Option(min=0.01, help="Videos, cameras and streams: analyse one frame every SECONDS.")
    ] = 1.0,
    source: Annotated[
        list[str] | None, typer.Option(help="A camera index (0) or a stream (rtsp://...): analysed until stopped.")
    ] = None,
    summary_out: Annotated[
        Path | None, typer.Option("--summary", help="Videos: write per-person (track) medians here (.json).")
    ] = None,
    project: Annotated[Path, typer.Option(help="Without --out, several inputs are saved under PROJECT/NAME.")] = Path(
        "runs/infer"
    ),
    name: Annotated[
        str | None, typer.Option(help="The run's folder under --project (default: the next number).")
    ] = None,
    exist_ok: Annotated[bool, typer.Option(help="Write into an existing --project/--name folder.")] = False,
    engine: Annotated[str, typer.Option(help="local, or ray (a Ray Data pipeline, for millions of photos).")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join ('auto' or host:port); default: start a local Ray.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="--engine ray: analysing actors (each loads the models).")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="--engine ray: images per batch.")] = 16,
    version: Annotated[
        bool, typer.Option("--version", callback=print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    options: AnalysisOptions = AnalysisOptions(),
) -> None:
    """Analyse photos: faces, skin regions, colour measures and (with a classifier) predictions."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..runtime import ResultWriter, SkinInferError, run_batch
    from ..runtime.defaults import model_heads, run_identity
    from ..runtime.files import atomic_write, collect_inputs
    from ..runtime.images import IMAGE_SUFFIXES
    from ..runtime.sources import TrackSummary, is_video, source_stream, track_faces
    from ..runtime.writers import check_output, record_key, same_file_key

    paths = list(paths or []) + list(source or [])
    if engine not in ("local", "ray"):
        raise fail(f"--engine {engine!r}: choose local or ray.")
    if resume and out is None:
        raise fail("--resume needs --out: it skips the images already in that file.")
    if engine == "ray" and (save_overlays or save_masks or json_out or demo):
        raise fail("--save-overlays, --save-masks, --json and --demo run with the local engine; drop --engine ray.")
    if engine == "ray" and out is None:
        raise fail("--engine ray needs --out (results.parquet, .jsonl, .csv or .json).")
    if engine == "ray" and any(p == "-" or is_video(p) or p.isdigit() for p in paths):
        raise fail("videos, cameras, streams and standard input run with the local engine; drop --engine ray.")
    demo_dir = tempfile.TemporaryDirectory(prefix="skin-infer-demo-") if demo else None
    if demo_dir:
        paths.append(_demo_photo(Path(demo_dir.name)))
    if not paths:
        raise fail("give at least one photo or folder (or --demo). Example: skin-infer photo.jpg")
    local = [p for p in paths if "://" not in p and p != "-" and not (p.isdigit() and not Path(p).exists())]
    files, warnings = collect_inputs(local, recursive)
    # URLs (downloaded), URIs (--engine ray: listed by Ray Data), standard input, cameras: as given
    files += [p for p in paths if p not in local]
    for warning in warnings:
        warn(warning)
    if not files:
        raise fail(
            f"no images found in {', '.join(paths)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
            f"{'' if recursive else '; add --recursive for sub-folders'}).",
            1,
        )
    if out is not None and out.exists():
        target = same_file_key(str(out))
        if any(same_file_key(f) == target for f in files):
            raise fail(f"--out {out} is also one of the inputs; write the results to another file.")
    live = any(f == "-" or is_video(f) or (f.isdigit() and not Path(f).exists()) for f in files)
    saved_run = out is None and not json_out and (len(files) > 1 or demo or live)
    try:
        if saved_run:  # as ultralytics keeps every prediction run: runs/infer/<N>/results.csv
            out = new_run_dir(project, name, exist_ok) / "results.csv"
        if out is not None:
            check_output(out, resume, overwrite)
    except SkinInferError as exc:
        raise fail(str(exc)) from None
    try:
        if engine == "ray":
            try:
                from ..runtime.ray_engine import RayEngine
            except ImportError as exc:
                raise need_extra("ray", "--engine ray", exc) from None
            runner = RayEngine(options, ray_address, workers, batch_size)
            heads, analyzer = model_heads(runner.options.model), None
        else:
            from ..runtime import Analyzer

            analyzer = Analyzer(options)
            heads = analyzer.heads
        if save_overlays:
            save_overlays.mkdir(parents=True, exist_ok=True)
        if save_masks:
            labels = getattr(analyzer.finder, "id2label", None)
            if labels is None:
                raise SkinInferError(
                    f"--save-masks needs a face parser; --parser {analyzer.finder.name} labels no pixels."
                )
            save_masks.mkdir(parents=True, exist_ok=True)
            atomic_write(save_masks / "labels.json", json.dumps({str(k): v for k, v in labels.items()}, indent=1))
        # last: nothing after it can fail
        writer = ResultWriter(out, heads, resume, run_identity(options), files) if out else None
    except (SkinInferError, OSError) as exc:
        raise fail(str(exc)) from None
    done = writer.done if writer else set()
    todo = [f for f in files if record_key(f) not in done] if done else files
    if done:
        what = "image(s) or frame(s)" if any("#" in key for key in done) else "image(s)"
        err.print(f"resuming: {len(done)} {what} already in {out} are skipped")
    if not quiet:
        err.print(analyzer.describe() if analyzer else f"ray: {workers} worker(s)", highlight=False)
    if analyzer:
        results = track_faces(analyzer.stream(source_stream(todo, every, done, sys.stdin.buffer)))
    else:
        results = runner.results(todo, done)
    tracks = TrackSummary()
    unknown_length = live  # frames of a video or a camera: counted as they come

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not ((len(todo) > 1 or unknown_length) and not quiet and not json_out),
    )
    task = progress.add_task("analysing", total=None if unknown_length else len(todo))

    def on_result(result) -> None:
        tracks.add(result)
        if not result.ok and not quiet:
            progress.console.print(Text.assemble(("failed: ", "red"), result.error), highlight=False)
        progress.advance(task)

    stopped = []

    def stop(signum, _frame) -> None:  # SIGTERM (timeout, systemd, containers) and SIGHUP end the run like Ctrl-C
        stopped.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM))}
    try:
        with progress:
            summary = run_batch(
                results,
                writer,
                save_overlays,
                save_masks,
                flat_names=len(paths) == 1 and not recursive,
                keep=lambda index, result: json_out or index == 0,
                on_result=on_result,
            )
    except Exception as exc:  # Ray wraps a failure of its own (not an image's) in its own types
        raise fail(f"the run failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 1) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if demo_dir:
            demo_dir.cleanup()
    kept = summary.kept
    if json_out:
        dicts = [r.to_dict() for r in kept]
        typer.echo(json.dumps(dicts[0] if len(dicts) == 1 else dicts, indent=2, ensure_ascii=False))
    elif summary.images == 1 and kept[0].ok and not quiet:
        print_table(kept[0])
    if summary_out:
        atomic_write(summary_out, json.dumps(tracks.to_list(), indent=2) + "\n")
    line = summary.line()
    if writer:
        line += f"; results in {out}"
    if summary_out:
        line += f"; per-person summary in {summary_out}"
    if save_overlays:
        line += f"; overlays in {save_overlays}"
    if save_masks:
        line += f"; label maps in {save_masks}"
    err.print(line, highlight=False)
    raise typer.Exit(128 + stopped[0] if stopped else summary.exit_code)


app.command("infer")(infer)
infer_main = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
infer_main.command()(infer)


def console_main() -> None:
    """The ``skin-infer`` console script: ``infer_main``, then the end of the process without the interpreter's
    teardown. The command has closed its files by then, and the atexit handlers (temporary folders, logging)
    still run; what is skipped is freeing every session, array and module one by one, 80-140 ms of a 0.7-1.0 s
    cold start (mypy's ``hard_exit`` does the same)."""
    import atexit
    import os

    try:
        infer_main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    if isinstance(code, str):  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
    atexit._run_exitfuncs()  # noqa: SLF001 - the handlers a normal exit would run, then none of the rest
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else int(code is not None))
