"""An offline simulator of the AceDataCloud Midjourney API (docs/upstream.md).

A real HTTP server with the upstream's payloads, timing, action state machine, error shapes and
images (real PNGs), plus fake-only knobs, fault injection and a control API, so clients can be
tested end to end without a network or a token::

    with SimServer(SimConfig(tokens=["t"], time_scale=0.01)) as sim:
        httpx.post(f"{sim.base_url}/midjourney/imagine", json={"prompt": "a fox"},
                   headers={"authorization": "Bearer t"})
        sim.state.requests("/midjourney/imagine")      # what was sent (token redacted)
        sim.state.inject("/midjourney/tasks", "429", times=2, retry_after=1)
        sim.state.configure(start_delay_s=50)          # every knob of SimConfig, validated
        sim.state.reset()

Upstream paths: ``POST /midjourney/imagine``, ``/edits`` and ``/videos`` (sync, ndjson stream, async,
callback_url), ``/describe`` (sync, with a task of type describe), ``/seed``, ``/shorten``,
``/translate`` (immediate answers) and ``/midjourney/tasks`` (retrieve, retrieve_batch, by type too);
other ``/midjourney/*`` paths answer 400 ``api_not_implemented``. Videos are real H.264 MP4s (clips.py).

Per-request controls (fake-only headers): ``x-fake-fault: <fault>[;k=v...][, <fault>...]``,
``x-fake-time-scale``, ``x-fake-start-delay``, ``x-fake-step-interval`` (simulated seconds) and
``x-fake-progress-steps: 10,50,100``. Faults also come from ``[[fault:...]]`` in a prompt, from
``state.inject`` / ``POST /__fake/inject``, and from the ``faults`` knob (see faults.py for the list).

Control API (not logged): ``GET/POST /__fake/config``, ``POST /__fake/inject``, ``POST /__fake/reset``,
``GET /__fake/tasks``, ``GET /__fake/requests?path=``, ``GET /__fake/callbacks``. It answers only a
standalone simulator, and asks for ``control_secret`` in ``x-sim-secret`` when one is set. Images
(cdn.py): ``GET /__fake/img/<image_id>.png[?width=&height=]``, ``/__fake/img/<image_id>/0_<k>.png``
(split_images and edits) and ``/__fake/img/<task_id>_grid_0.webp`` (previews, gone once the task
ends); videos (cdn.py): ``GET /__fake/video/<video_id>/0_<k>.mp4`` and the cover ``<video_id>.png``.
Image and video GETs are logged with the API requests.

Embedded in an MCP server (``SimConfig(embedded=True)``) it serves the API and its images and nothing
else: no control API, image URLs under the fixed origin ``PUBLIC_ORIGIN`` with a random part in each
(cdn.py), no request log, no callbacks, no faults from prompts, and no fetches: a URL in a prompt that
is not one of its own images is drawn as a placeholder. With ``archive`` (a file path) it keeps what it
served on disk (archive.py), so the next process serves yesterday's images and acts on them.
A standalone simulator fetches such URLs only with ``fetch_foreign`` (``mj-mcp sim --allow-fetch``),
within the limits of inputs.py.
"""

from .cdn import PUBLIC_ORIGIN
from .knobs import SimConfig
from .routes import create_app
from .runner import SimServer, run
from .state import SimState

__all__ = ["PUBLIC_ORIGIN", "SimConfig", "SimServer", "SimState", "create_app", "run"]
