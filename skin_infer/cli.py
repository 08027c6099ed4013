"""The ``skin`` commands and the ``skin-infer`` shortcut. Heavy imports happen inside the command that needs them."""

from __future__ import annotations

import json
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="skin-infer: skin analysis from photos with ONNX Runtime.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Model files: list them, download them into the cache.", no_args_is_help=True)
app.add_typer(models_app, name="models")
err = Console(stderr=True)


class Parser(str, Enum):
    auto = "auto"
    segformer = "segformer"
    yunet = "yunet"
    haar = "haar"
    none = "none"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    tensorrt = "tensorrt"
    coreml = "coreml"
    dml = "dml"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _demo_photo(folder: Path) -> str:
    try:
        from skimage import data
    except ImportError:
        raise _fail("--demo needs scikit-image for its sample photo: pip install 'skin-infer[demo]'") from None
    import cv2

    path = folder / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return str(path)


def _overlay_name(file: str, flat: bool) -> str:
    """The overlay's file name: the photo's name, or its whole path flattened when folders may repeat names."""
    name = Path(file).name if flat else file.replace("/", "__").replace("\\", "__").lstrip("._")
    return name + ".overlay.jpg"


def _print_table(result: dict, heads: list[str]) -> None:
    out = Console()
    faces = result["faces"]
    out.print(
        f"[bold]{result['file']}[/]  {result['width']}x{result['height']}  "
        f"{len(faces)} face(s)" + ("" if faces else " — analysed as a whole image"),
        highlight=False,
    )
    table = Table(show_header=True, header_style="bold")
    for col in ["face", "region", "box x,y,w,h", "skin", "ITA°", "tone", "a*"] + heads:
        table.add_column(col)
    for region in result["regions"]:
        m = region.get("measures") or {}
        preds = [
            f"{p['label']} {p['score']:.2f}"
            if (p := region["predictions"].get(h))
            else (region.get("note", "-") if i == 0 else "-")
            for i, h in enumerate(heads)
        ]
        table.add_row(
            "-" if region["face_index"] is None else str(region["face_index"]),
            region["name"],
            ",".join(map(str, region["box"])),
            f"{region['skin_fraction']:.0%}",
            str(m.get("ita_deg", "-")),
            m.get("skin_tone", "-"),
            str(m.get("redness_a", "-")),
            *preds,
        )
    out.print(table)


def infer(
    paths: Annotated[list[str] | None, typer.Argument(help="Photos and/or folders to analyse.")] = None,
    model: Annotated[Path | None, typer.Option(help="Classifier bundle folder (manifest.json + model.onnx).")] = None,
    parser: Annotated[Parser, typer.Option(help="Face finder: auto picks segformer > yunet > haar.")] = Parser.auto,
    parser_model: Annotated[Path | None, typer.Option(help="Face-parser bundle folder or YuNet .onnx file.")] = None,
    device: Annotated[Device, typer.Option(help="Execution provider; an unavailable one is an error.")] = Device.auto,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads per model (0: ONNX Runtime's default).")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write results to .csv, .json or .jsonl.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")] = False,
    save_overlays: Annotated[Path | None, typer.Option(help="Folder for overlay pictures.")] = None,
    explain: Annotated[bool, typer.Option(help="Add class-activation heatmaps to overlays.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    resume: Annotated[bool, typer.Option(help="Skip images already in --out and keep their results.")] = False,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse larger images (decompression bombs).")] = 64_000_000,
    min_skin: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Skin fraction below which a region is not classified.")
    ] = 0.25,
    top_k: Annotated[int, typer.Option(min=1, help="Top-k labels kept per head.")] = 3,
    demo: Annotated[bool, typer.Option(help="Analyse a sample portrait (needs the [demo] extra).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table and no progress bar.")] = False,
) -> None:
    """Analyse photos: faces, skin regions, colour measures and (with a classifier) predictions."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .runtime import Analyzer, Classifier, ResultWriter, SkinInferError, make_finder
    from .runtime.batch import analyze_files
    from .runtime.files import collect_inputs
    from .runtime.images import IMAGE_SUFFIXES
    from .runtime.overlays import save_overlay

    paths = list(paths or [])
    if resume and out is None:
        raise _fail("--resume needs --out: it skips the images already in that file.")
    if explain and model is None:
        raise _fail("--explain needs a classifier (--model) whose bundle has a CAM output.")
    tmp_dir = tempfile.TemporaryDirectory(prefix="skin-infer-demo-")
    if demo:
        paths.append(_demo_photo(Path(tmp_dir.name)))
    if not paths:
        raise _fail("give at least one photo or folder (or --demo). Example: skin-infer photo.jpg")
    try:
        finder = make_finder(parser.value, parser_model, device.value, threads)
        classifier = Classifier(model, device.value, threads, top_k) if model else None
        if explain and not classifier.has_cam:
            raise SkinInferError(
                f"{model}: this bundle has no CAM output, so --explain cannot draw heatmaps; "
                "re-export it with the CAM output."
            )
        heads = [(h.name, h.labels) for h in classifier.heads] if classifier else []
        writer = ResultWriter(out, heads, resume) if out else None
    except SkinInferError as exc:
        raise _fail(str(exc)) from None
    if save_overlays:
        save_overlays.mkdir(parents=True, exist_ok=True)
    files, warnings = collect_inputs(paths, recursive)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not files:
        if writer:
            writer.close()
        raise _fail(
            f"no images found in {', '.join(paths)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
            f"{'' if recursive else '; add --recursive for sub-folders'}).",
            1,
        )
    done = writer.done if writer else set()
    todo = [f for f in files if f not in done]
    if done:
        err.print(f"resuming: {len(files) - len(todo)} image(s) already in {out} are skipped")
    analyzer = Analyzer(finder, classifier, min_skin, explain)
    providers = f"faces: {finder.name} ({finder.provider})" + (
        f", classifier: {classifier.bundle.name} ({classifier.provider})" if classifier else ", no classifier"
    )
    if not quiet:
        err.print(providers, highlight=False)

    results, count, failed, n_faces, interrupted = [], 0, 0, 0, False  # results kept only to print them
    show_progress = len(todo) > 1 and not quiet and not json_out
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show_progress,
    )
    start = time.perf_counter()
    try:
        with progress:
            task = progress.add_task("analysing", total=len(todo))
            for analysis in analyze_files(todo, analyzer, max_pixels):
                result = analysis.result
                if result["status"] != "ok":
                    failed += 1
                    if not quiet:
                        progress.console.print(f"[red]failed:[/] {result['error']}", highlight=False)
                elif save_overlays:
                    save_overlay(
                        analysis, save_overlays, _overlay_name(result["file"], flat=len(paths) == 1 and not recursive)
                    )
                if writer:
                    writer.write(result)
                if json_out or count == 0:
                    results.append(result)
                count, n_faces = count + 1, n_faces + len(result["faces"])
                progress.advance(task)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if writer:
            writer.close()
        tmp_dir.cleanup()
    elapsed = time.perf_counter() - start
    if json_out:
        typer.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2, ensure_ascii=False))
    elif count == 1 and results[0]["status"] == "ok" and not quiet:
        _print_table(results[0], [h for h, _ in heads])
    summary = (
        f"{'interrupted: ' if interrupted else ''}{count - failed} image(s) analysed, {failed} failed, "
        f"{n_faces} face(s), {elapsed:.2f} s ({count / elapsed if elapsed > 0 else 0:.1f} img/s)"
    )
    if writer:
        summary += f"; results in {out}"
    if save_overlays:
        summary += f"; overlays in {save_overlays}"
    err.print(summary, highlight=False)
    if interrupted:
        raise typer.Exit(130)
    raise typer.Exit(1 if failed else 0)


app.command("infer")(infer)
infer_main = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
infer_main.command()(infer)


@models_app.command("list")
def models_list() -> None:
    """Models the runtime can download, and which are in the cache."""
    from .runtime.models import REGISTRY, cache_dir, cached_path

    table = Table("name", "cached", "size", "licence", "description", title=f"cache: {cache_dir()}")
    for name, source in REGISTRY.items():
        path = cached_path(name)
        table.add_row(
            name,
            str(path) if path else "no",
            f"{source.size / 1e6:.2f} MB",
            source.licence,
            source.description,
        )
    Console().print(table)


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name (see `skin models list`).")],
    url: Annotated[str | None, typer.Option(help="Download from this URL instead (a mirror).")] = None,
) -> None:
    """Download a model into the cache, checking its pinned sha256."""
    from .runtime import SkinInferError, pull

    try:
        path = pull(name, url)
    except SkinInferError as exc:
        raise _fail(str(exc), 1) from None
    err.print(f"{name}: saved to {path} (sha256 verified); `--parser auto` uses it from now on", highlight=False)
