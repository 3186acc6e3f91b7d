"""The explorer's page (Gradio): pick or upload an image, click a pixel, read its attention.

One column per checkpoint (two with ``--compare``), all answering the same image and click.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from danet.analysis.diagnostics import REACH_RADIUS
from danet.app.explorer import (
    Explorer,
    Features,
    Picture,
    load_picture,
    load_sample,
    sample_images,
)
from danet.app.render import (
    channels_html,
    heat_picture,
    legend_html,
    mass_html,
    prediction_picture,
    reach_html,
)
from danet.data.io import DataError

CSS = """
.danet-mass-table td, .danet-reach-table td { padding: 1px 6px; font-size: 13px; }
.danet-channels { margin: 2px 0 0 18px; font-size: 13px; }
"""
HELP = (
    "Pick a sample or upload an image, then **click any pixel** of the prediction. The attention "
    "row is that pixel's row of the position attention `softmax(s Q^T K)`, as multiples of the "
    "uniform weight 1/N (0 at the bottom of the scale)."
)


@dataclass
class Panel:
    """The components of one checkpoint's column."""

    explorer: Explorer
    overlay: gr.Image
    legend: gr.HTML
    heat: gr.Image
    mass: gr.HTML
    reach: gr.HTML
    channels: gr.HTML
    channel: gr.Slider
    cam: gr.Image

    def cleared(self) -> list[Any]:
        """Heat, mass, reach and channels before any click."""
        return [
            None,
            "",
            _note(self.explorer, "pam", "Click a pixel."),
            _note(self.explorer, "cam"),
        ]


def _note(explorer: Explorer, module: str, otherwise: str = "") -> str:
    """The page's sentence on a module the model lacks, or ``otherwise``."""
    text = explorer.missing().get(module)
    return f"<p><i>{text}</i></p>" if text else otherwise


def _panel(explorer: Explorer, i: int) -> Panel:
    gr.Markdown(f"### {explorer.name} (attention={explorer.attention!r})")
    has_cam = explorer.cam is not None
    image = {"interactive": False, "format": "jpeg", "min_width": 320, "buttons": []}
    with gr.Row():
        overlay = gr.Image(label="prediction: click a pixel", elem_id=f"overlay-{i}", **image)
        heat = gr.Image(label="the pixel's PAM row", elem_id=f"heat-{i}", **image)
    legend = gr.HTML(elem_id=f"legend-{i}")
    with gr.Row():
        mass = gr.HTML(elem_id=f"mass-{i}", min_height=0)
        reach = gr.HTML(elem_id=f"reach-{i}", min_height=0)
    with gr.Row():
        with gr.Column(min_width=320):
            channels = gr.HTML(elem_id=f"channels-{i}", min_height=0)
            channel = gr.Slider(
                0, 1, step=1, label="CAM channel", elem_id=f"channel-{i}", visible=has_cam
            )
        cam = gr.Image(
            label="attended channel (CAM output)", elem_id=f"cam-{i}", visible=has_cam, **image
        )
    return Panel(explorer, overlay, legend, heat, mass, reach, channels, channel, cam)


def _cam_map(picture: Picture, feats: Features, channel: int, point: Any) -> Any:
    """The attended map of one CAM channel, on a scale from 0."""
    if feats.cam_out is None:
        return None
    channel = min(max(int(channel), 0), feats.cam_out.shape[0] - 1)
    values = feats.cam_out[channel].reshape(feats.size).clamp_min(0)
    return heat_picture(picture.rgb, values, point or (-20, -20), f"ch {channel}")


def _click_outputs(panel: Panel, picture: Picture, feats: Features, x: int, y: int) -> list[Any]:
    """One panel's answer to a click at image pixel (x, y)."""
    explorer = panel.explorer
    q = explorer.query(feats, picture, x, y)
    n = feats.size[0] * feats.size[1]
    names = explorer.class_names
    heat, mass = None, ""
    if q.row is not None and q.class_mass is not None:
        heat = heat_picture(picture.rgb, q.row.reshape(feats.size) * n, (x, y), "x 1/N")
        mass = mass_html(q.class_mass, names, explorer.palette, feats.label_source, q.query_class)
        cls = names[q.query_class] if q.query_class >= 0 else "unlabelled"
        fy, fx = divmod(q.index, feats.size[1])
        where = f"pixel ({x}, {y}), feature cell ({fx}, {fy}) of {feats.size[1]}x{feats.size[0]}"
        reach = reach_html(q.reach, n, REACH_RADIUS, feats.label_source, cls, where)
    else:
        reach = _note(explorer, "pam")
    channels, channel, cam = _note(explorer, "cam"), gr.update(), None
    if q.channels:
        channels = channels_html(q.channels)
        channel = gr.update(value=q.channels[0][0])
        cam = _cam_map(picture, feats, q.channels[0][0], (x, y))
    return [heat, mass, reach, channels, channel, cam]


def read_upload(
    path: str | None, explorer: Explorer, max_pixels: int | None = None
) -> tuple[Picture | None, str]:
    """An uploaded file as a picture for ``explorer``, or None and the page's message why not
    (not an image, over the pixel budget, unreadable)."""
    if not path:
        return None, "No file came."
    try:
        picture = load_picture(path, explorer.input_size, explorer.num_classes, None, max_pixels)
    except DataError as err:
        why = str(err).split(": ", 1)[-1]  # the server's temporary path is no use to the user
        return None, f"**Upload refused**: {why}"
    return picture, "Click a pixel."


def build(explorers: list[Explorer], max_pixels: int | None = None) -> gr.Blocks:
    """The page for one or two checkpoints; uploads over ``max_pixels`` are refused."""
    samples = list(sample_images())
    with gr.Blocks(title="danet explore", analytics_enabled=False) as page:
        gr.Markdown("## danet explore: where does a pixel attend?\n" + HELP)
        state = gr.State(None)
        with gr.Row():
            sample = gr.Radio(samples, label="bundled CamVid samples", elem_id="samples", scale=4)
            upload = gr.UploadButton("upload an image", type="filepath", scale=1)
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            panels = []
            for i, explorer in enumerate(explorers):
                with gr.Column():
                    panels.append(_panel(explorer, i))
        image_outputs = [state, status]
        click_outputs: list[Any] = [state, status]
        for p in panels:
            image_outputs += [p.overlay, p.legend, p.heat, p.mass, p.reach, p.channels]
            image_outputs += [p.channel, p.cam]
            click_outputs += [p.heat, p.mass, p.reach, p.channels, p.channel, p.cam]

        def show(picture: Picture | None, message: str) -> list[Any]:
            if picture is None:
                return [gr.update(), message] + [gr.update()] * (len(image_outputs) - 2)
            out: list[Any] = []
            feats = []
            for p in panels:
                f = p.explorer.features(picture)
                feats.append(f)
                c = f.cam_out.shape[0] if f.cam_out is not None else 2
                overlay = prediction_picture(picture.rgb, f.pred, p.explorer.palette)
                legend = legend_html(f.pred, p.explorer.class_names, p.explorer.palette)
                slider = gr.update(maximum=c - 1, value=0)
                out += [overlay, legend, *p.cleared(), slider, None]
            h, w = picture.rgb.shape[:2]
            labels = "classes from its label mask"
            if picture.labels is None:
                labels = "no label mask: classes from the prediction"
            message = f"**{picture.name}** at {w}x{h} ({labels}). {message}"
            return [{"picture": picture, "features": feats, "point": None}, message, *out]

        def on_sample(name: str | None) -> list[Any]:
            if not name:
                return show(None, "")
            first = explorers[0]
            picture = load_sample(name, first.input_size, first.num_classes)
            return show(picture, "Click a pixel.")

        def on_upload(path: str | None) -> list[Any]:
            picture, message = read_upload(path, explorers[0], max_pixels)
            return show(picture, message)

        def on_click(data: dict | None, evt: gr.SelectData) -> list[Any]:
            if not data:
                message = "Pick or upload an image first."
                return [data, message] + [gr.update()] * (len(click_outputs) - 2)
            start = time.perf_counter()
            x, y = (int(v) for v in evt.index[:2])
            data = {**data, "point": (x, y)}
            out: list[Any] = []
            for p, feats in zip(panels, data["features"], strict=True):
                out += _click_outputs(p, data["picture"], feats, x, y)
            took = time.perf_counter() - start
            message = f"**{data['picture'].name}**: pixel ({x}, {y}), answered in {took:.2f} s"
            return [data, message, *out]

        sample.change(on_sample, sample, image_outputs)
        upload.upload(on_upload, upload, image_outputs)
        for i, p in enumerate(panels):
            p.overlay.select(on_click, state, click_outputs, queue=False)

            def on_channel(data: dict | None, channel: float, i: int = i) -> Any:
                if not data:
                    return None
                feats = data["features"][i]
                return _cam_map(data["picture"], feats, int(channel), data["point"])

            p.channel.input(on_channel, [state, p.channel], p.cam)
    return page


def check_port(host: str, port: int) -> None:
    """Raise a one-line ``RuntimeError`` when ``port`` cannot be served on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the server will: a port left in TIME_WAIT by a server just stopped is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            why = "is in use" if err.errno == errno.EADDRINUSE else f"cannot be used ({err})"
            raise RuntimeError(f"port {port} on {host} {why}; pick another with --port") from None


def serve(
    models: dict[str, Any],
    port: int = 7860,
    max_pixels: int | None = None,
    host: str = "127.0.0.1",
) -> None:
    """Serve the page for ``models`` (one, or two side by side; {name: model}, opened by the
    caller) on ``host:port`` until Ctrl+C."""
    check_port(host, port)
    explorers = [Explorer(model, name) for name, model in models.items()]
    for explorer in explorers:
        for text in explorer.missing().values():
            print(f"note: {text}")
    page = build(explorers, max_pixels)
    print(f"danet explore: http://{host}:{port} (Ctrl+C stops it)", flush=True)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])
    page.launch(
        server_name=host,
        server_port=port,
        ssr_mode=False,
        quiet=True,
        theme=theme,
        css=CSS,
        max_file_size="200mb",
        footer_links=[],
    )
