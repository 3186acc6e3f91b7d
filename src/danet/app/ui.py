"""The explorer's page (Gradio): pick or upload an image, click a pixel, read its attention.

One column per checkpoint (two with ``--compare``), all answering the same image and click.
"""

from __future__ import annotations

import errno
import html
import logging
import math
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Any

import gradio as gr

from danet.analysis.diagnostics import REACH_RADIUS
from danet.app.explorer import (
    SESSION_LIMIT,
    SESSION_TTL_S,
    Explorer,
    Features,
    Picture,
    Sessions,
    click_point,
    load_picture,
    load_sample,
    sample_images,
)
from danet.app.render import (
    CHANNEL,
    channels_html,
    heat_picture,
    legend_html,
    mass_html,
    prediction_picture,
    reach_html,
)
from danet.data.io import DataError, DataWarning
from danet.model.card import model_card

logger = logging.getLogger(__name__)

CSS = """
.danet-mass-table td, .danet-reach-table td { padding: 1px 6px; font-size: 13px; }
.danet-channels { margin: 2px 0 0 18px; font-size: 13px; }
.danet-hint { color: #555; font-size: 13px; margin: 0 0 6px 0; }
.danet-start { border: 1px dashed #aaa; padding: 24px; color: #444; font-size: 15px; }
.danet-formula { color: #888; font-size: 11px; }
"""
HELP = (
    "Pick one of the street photos or upload your own, then **click any pixel** of the coloured "
    "picture. The model answers two questions about that pixel: *where in the image does it "
    "gather information from?* (its position attention) and *which of its feature maps light up "
    "there?* (its channel attention)."
)
START = (
    "<div class='danet-start'>Nothing to show yet: <b>pick a sample</b> above or <b>upload an "
    "image</b>. The model's prediction will appear here; click any pixel of it to see where that "
    "pixel looks.</div>"
)


def _formula(text: str) -> str:
    return f"<span class='danet-formula'>({text})</span>"


HINTS = {
    "overlay": "The model's prediction: each colour is a class (legend below). Click any pixel.",
    "heat": (
        "Where the clicked pixel (circled) looks: bright places are where it takes its "
        "information from. On the scale, 1 is an even spread over the whole image and 10 is ten "
        "times that. " + _formula("one row of the position attention, softmax(s Q<sup>T</sup>K)")
    ),
    "cam": (
        "One feature map across the whole image: bright where it responds. It is the first of "
        "the maps listed on the left, the one that lights up most at the clicked pixel. "
        + _formula("a channel of the channel attention's output, softmax(XX<sup>T</sup>) X")
    ),
}


def _hint(key: str) -> str:
    return f"<div class='danet-hint'>{HINTS[key]}</div>"


@dataclass
class Panel:
    """The components of one checkpoint's column."""

    explorer: Explorer
    start: gr.HTML
    body: gr.Column
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
            _note(self.explorer, "pam", "<p><i>Click a pixel of the prediction.</i></p>"),
            _note(self.explorer, "cam"),
        ]


def _note(explorer: Explorer, module: str, otherwise: str = "") -> str:
    """The page's sentence on a module the model lacks, or ``otherwise``."""
    text = explorer.missing().get(module)
    return f"<p><i>{text}</i></p>" if text else otherwise


def _about(explorer: Explorer) -> str:
    """What the model card says about the model, in a line, or nothing without a card."""
    try:
        card = model_card(explorer.name)
    except (OSError, ValueError) as err:
        logger.warning("no model card for %s: %s", explorer.name, err)
        return ""
    if card is None:
        return ""
    return (
        f"The street photos are CamVid val images. {html.escape(card.on_split('val'))}; "
        f"{card.iterations} training iterations."
    )


def _panel(explorer: Explorer, i: int) -> Panel:
    gr.Markdown(f"### {explorer.name}")
    about = _about(explorer)
    if about:
        gr.HTML(f"<div class='danet-hint'>{about}</div>")
    has_cam = explorer.cam is not None
    image = {"interactive": False, "format": "jpeg", "min_width": 320, "buttons": []}
    start = gr.HTML(START, elem_id=f"start-{i}")
    with gr.Column(visible=False) as body:
        with gr.Row():
            with gr.Column(min_width=320):
                overlay = gr.Image(
                    label="the model's prediction: click a pixel", elem_id=f"overlay-{i}", **image
                )
                gr.HTML(_hint("overlay"))
            with gr.Column(min_width=320):
                heat = gr.Image(label="where this pixel looks", elem_id=f"heat-{i}", **image)
                gr.HTML(_hint("heat"))
        legend = gr.HTML(elem_id=f"legend-{i}")
        with gr.Row():
            mass = gr.HTML(elem_id=f"mass-{i}", min_height=0)
            reach = gr.HTML(elem_id=f"reach-{i}", min_height=0)
        with gr.Row():
            with gr.Column(min_width=320):
                channels = gr.HTML(elem_id=f"channels-{i}", min_height=0)
                channel = gr.Slider(
                    0,
                    1,
                    step=1,
                    label="or pick a feature map by number",
                    elem_id=f"channel-{i}",
                    visible=has_cam,
                )
            with gr.Column(min_width=320, visible=has_cam):
                cam = gr.Image(label="a feature map", elem_id=f"cam-{i}", **image)
                gr.HTML(_hint("cam"))
    return Panel(explorer, start, body, overlay, legend, heat, mass, reach, channels, channel, cam)


def _cam_map(picture: Picture, feats: Features, channel: int, point: Any) -> Any:
    """The attended map of one CAM channel, on a scale from 0, titled by its number."""
    if feats.cam_out is None:
        return None
    channel = min(max(int(channel), 0), feats.cam_out.shape[0] - 1)
    values = feats.cam_out[channel].reshape(feats.size).clamp_min(0)
    picture_ = heat_picture(picture.rgb, values, point or (-20, -20), f"map {channel}", CHANNEL)
    return gr.update(value=picture_, label=f"feature map {channel}: bright where it responds")


def _click_outputs(panel: Panel, picture: Picture, feats: Features, x: int, y: int) -> list[Any]:
    """One panel's answer to a click at pixel (x, y) of the picture as shown."""
    explorer = panel.explorer
    q = explorer.query(feats, picture, x, y)
    n = feats.size[0] * feats.size[1]
    names = explorer.class_names
    heat, mass = None, ""
    if q.row is not None and q.class_mass is not None:
        heat = heat_picture(picture.rgb, q.row.reshape(feats.size) * n, (x, y), "x even")
        mass = mass_html(q.class_mass, names, explorer.palette, feats.label_source, q.query_class)
        cls = names[q.query_class] if q.query_class >= 0 else "unlabelled"
        fy, fx = divmod(q.index, feats.size[1])
        (sh, sw), (sx, sy) = _source_size(picture), picture.source_point(x, y)
        where = f"pixel ({sx}, {sy}) of the {sw}x{sh} image " + _formula(
            f"feature cell ({fx}, {fy}) of {feats.size[1]}x{feats.size[0]}"
        )
        reach = reach_html(q.reach, n, REACH_RADIUS, feats.label_source, cls, where)
    else:
        reach = _note(explorer, "pam")
    channels, channel, cam = _note(explorer, "cam"), gr.update(), None
    if q.channels:
        channels = channels_html(q.channels)
        channel = gr.update(value=q.channels[0][0])
        cam = _cam_map(picture, feats, q.channels[0][0], (x, y))
    return [heat, mass, reach, channels, channel, cam]


def _source_size(picture: Picture) -> tuple[int, int]:
    return picture.source_size or (picture.rgb.shape[0], picture.rgb.shape[1])


def read_upload(
    path: str | None, explorer: Explorer, max_pixels: int | None = None
) -> tuple[Picture | None, str]:
    """An uploaded file as a picture for ``explorer``, or None and the page's message why not
    (not an image, over the pixel budget, too thin, unreadable)."""
    if not path:
        return None, "No file came."
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            picture = load_picture(
                path, explorer.input_size, explorer.num_classes, None, max_pixels
            )
    except DataError as err:
        why = str(err).split(": ", 1)[-1]  # the server's temporary path is no use to the user
        return None, f"**Upload refused**: {why}"
    notes = [
        str(w.message).split(": ", 1)[-1] for w in caught if issubclass(w.category, DataWarning)
    ]
    return picture, "".join(f"Note: {html.escape(n)}. " for n in notes) + "Click a pixel."


def _one_line(err: BaseException) -> str:
    """An unexpected error as one line for the page (and the server's log, without traceback)."""
    text = " ".join(str(err).split())[:200] or type(err).__name__
    logger.warning("explorer: %s: %s", type(err).__name__, text)
    return f"**Something went wrong**: {html.escape(text)}"


class Handlers:
    """The page's event handlers over its panels: each keeps a session's picture in ``sessions``
    and answers a bad input or a failure with one line on the page, never a server traceback."""

    def __init__(
        self,
        explorers: list[Explorer],
        panels: list[Any],
        samples: list[str],
        sessions: Sessions,
        max_pixels: int | None,
        image_outputs: list[Any],
        click_outputs: list[Any],
    ) -> None:
        self.explorers, self.panels, self.samples = explorers, panels, samples
        self.sessions, self.max_pixels = sessions, max_pixels
        self.image_outputs, self.click_outputs = image_outputs, click_outputs

    @staticmethod
    def unchanged(outputs: list[Any], token: Any, message: str) -> list[Any]:
        """The state and a status message; every other output left as it is."""
        return [token, message] + [gr.update()] * (len(outputs) - 2)

    def show(self, token: Any, picture: Picture | None, message: str) -> list[Any]:
        """Every panel's prediction of ``picture``, kept for the clicks that follow."""
        if picture is None:
            return self.unchanged(self.image_outputs, token, message)
        out: list[Any] = []
        feats = []
        for p in self.panels:
            f = p.explorer.features(picture)
            feats.append(f)
            c = f.cam_out.shape[0] if f.cam_out is not None else 2
            overlay = prediction_picture(picture.rgb, f.pred, p.explorer.palette)
            legend = legend_html(f.pred, p.explorer.class_names, p.explorer.palette)
            slider = gr.update(maximum=c - 1, value=0)
            hidden, shown = gr.update(visible=False), gr.update(visible=True)
            out += [hidden, shown, overlay, legend, *p.cleared(), slider, None]
        h, w = _source_size(picture)
        labels = "classes from its label mask"
        if picture.labels is None:
            labels = "no label mask: classes from the prediction"
        message = f"**{picture.name}**, {w}x{h} ({labels}). {message}"
        token = self.sessions.put({"picture": picture, "features": feats, "point": None})
        return [token, message, *out]

    def on_sample(self, token: Any, name: Any) -> list[Any]:
        """A bundled sample chosen."""
        try:
            if not isinstance(name, str) or name not in self.samples:
                return self.unchanged(self.image_outputs, token, "")
            first = self.explorers[0]
            picture = load_sample(name, first.input_size, first.num_classes)
            return self.show(token, picture, "Click a pixel.")
        except Exception as err:  # the page says it in one line; no server traceback
            return self.unchanged(self.image_outputs, token, _one_line(err))

    def on_upload(self, token: Any, path: Any) -> list[Any]:
        """An image uploaded."""
        try:
            path = path if isinstance(path, str) else None
            picture, message = read_upload(path, self.explorers[0], self.max_pixels)
            return self.show(token, picture, message)
        except Exception as err:
            return self.unchanged(self.image_outputs, token, _one_line(err))

    def on_click(self, token: Any, evt: gr.EventData) -> list[Any]:
        """A pixel clicked: every panel's attention figures for it."""
        # gr.EventData, not gr.SelectData: SelectData fails on a payload without a "value"
        # before this runs; here every payload reaches click_point's checks
        try:
            data = self.sessions.get(token)
            if data is None:
                message = "Pick or upload an image first."
                if token is not None:
                    message = "This page was idle too long: pick or upload the image again."
                return self.unchanged(self.click_outputs, token, message)
            start = time.perf_counter()
            picture = data["picture"]
            payload = vars(evt).get("_data")
            index = payload.get("index") if isinstance(payload, dict) else None
            try:
                x, y = click_point(index, picture.rgb.shape[:2])
            except ValueError as err:
                return self.unchanged(self.click_outputs, token, f"**Click ignored**: {err}")
            data["point"] = (x, y)
            out: list[Any] = []
            for p, feats in zip(self.panels, data["features"], strict=True):
                out += _click_outputs(p, picture, feats, x, y)
            took = time.perf_counter() - start
            (sh, sw), (sx, sy) = _source_size(picture), picture.source_point(x, y)
            message = (
                f"**{picture.name}**: pixel ({sx}, {sy}) of the {sw}x{sh} image, answered "
                f"in {took:.2f} s"
            )
            return [token, message, *out]
        except Exception as err:
            return self.unchanged(self.click_outputs, token, _one_line(err))

    def channel_handler(self, i: int) -> Any:
        """The handler of panel ``i``'s CAM channel slider."""

        def on_channel(token: Any, channel: Any) -> Any:
            return self.on_channel(i, token, channel)

        return on_channel

    def on_channel(self, i: int, token: Any, channel: Any) -> Any:
        """Panel ``i``'s CAM channel slider moved."""
        data = self.sessions.get(token)
        valid = isinstance(channel, (int, float)) and not isinstance(channel, bool)
        if data is None or not valid or not math.isfinite(channel):
            return gr.update()
        try:
            feats = data["features"][i]
            return _cam_map(data["picture"], feats, int(channel), data["point"])
        except Exception as err:
            _one_line(err)
            return gr.update()


def build(
    explorers: list[Explorer], max_pixels: int | None = None, sessions: Sessions | None = None
) -> gr.Blocks:
    """The page for one or two checkpoints; uploads over ``max_pixels`` are refused. Each page
    session's picture is kept in ``sessions`` (bounded in number and age)."""
    samples = list(sample_images())
    sessions = sessions if sessions is not None else Sessions()
    with gr.Blocks(
        title="danet explore", analytics_enabled=False, delete_cache=(600, SESSION_TTL_S)
    ) as page:
        gr.Markdown("## danet explore: where does a pixel look?\n" + HELP)
        state = gr.State(None, time_to_live=SESSION_TTL_S)
        with gr.Row():
            sample = gr.Radio(
                samples, label="street photos from CamVid", elem_id="samples", scale=4
            )
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
            image_outputs += [p.start, p.body, p.overlay, p.legend, p.heat, p.mass, p.reach]
            image_outputs += [p.channels, p.channel, p.cam]
            click_outputs += [p.heat, p.mass, p.reach, p.channels, p.channel, p.cam]
        on = Handlers(
            explorers, panels, samples, sessions, max_pixels, image_outputs, click_outputs
        )
        sample.change(on.on_sample, [state, sample], image_outputs)
        upload.upload(on.on_upload, [state, upload], image_outputs)
        for i, p in enumerate(panels):
            p.overlay.select(on.on_click, state, click_outputs, queue=False)
            p.channel.input(on.channel_handler(i), [state, p.channel], p.cam)
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
        state_session_capacity=SESSION_LIMIT,
        footer_links=[],
    )
