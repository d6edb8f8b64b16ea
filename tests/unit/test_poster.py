"""A video's poster, decoded from real MP4 bytes (encoded here with PyAV, as the simulator does): the
first frame of each clip on a 2x2 sheet labelled 1-4, its facts, and the bounds of decoding what a CDN
sends (not an MP4, a codec we do not decode, a frame too large, cut short)."""

from __future__ import annotations

import io

import av
import pytest
from PIL import Image

from mj_mcp.errors import UnreadableImage
from mj_mcp.media import poster
from mj_mcp.media.previews import quadrant_label_boxes
from mj_mcp.sim.clips import FPS, encode

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def clip(colour: tuple[int, int, int], size: tuple[int, int] = (640, 368), frames: int = 12) -> bytes:
    """An H.264 MP4 whose first frame is ``colour`` and later ones black."""
    drawn = [Image.new("RGB", size, colour if i == 0 else (0, 0, 0)) for i in range(frames)]
    return encode(iter(drawn), size)


def made_sheet(clips: list[bytes | None], long_side: int, *, labelled: bool) -> tuple[bytes, list]:
    """What Media does with a video's clips: each one's first frame (None where it does not decode), on a sheet."""
    frames, facts = [], []
    for data in clips:
        try:
            frame, fact = poster.first_frame(data) if data is not None else (None, None)
        except UnreadableImage:
            frame, fact = None, None
        frames.append(frame)
        facts.append(fact)
    return poster.contact_sheet(frames, long_side, labelled=labelled), facts


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=False))


def test_the_first_frame_and_the_facts_of_a_clip():
    frame, facts = poster.first_frame(clip(COLOURS[2], frames=24))
    assert frame.size == (640, 368) and near(frame.getpixel((320, 184)), COLOURS[2])
    assert (facts.width, facts.height) == (640, 368) and facts.seconds == pytest.approx(24 / FPS, abs=0.1)


def test_the_sheet_shows_each_clips_first_frame_in_upstreams_order():
    jpeg, facts = made_sheet([clip(c) for c in COLOURS], 512, labelled=False)
    sheet = Image.open(io.BytesIO(jpeg))
    assert sheet.format == "JPEG" and max(sheet.size) == 512 and sheet.size == (512, 294)
    w, h = sheet.size
    centres = [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]
    assert [near(sheet.getpixel(c), colour) for c, colour in zip(centres, COLOURS, strict=True)] == [True] * 4
    assert all(f is not None and (f.width, f.height) == (640, 368) for f in facts)


def test_the_models_sheet_is_labelled_1_to_4_like_a_grid():
    clips = [clip(c) for c in COLOURS]
    plain = Image.open(io.BytesIO(made_sheet(clips, 512, labelled=False)[0]))
    labelled = Image.open(io.BytesIO(made_sheet(clips, 512, labelled=True)[0]))
    for box in quadrant_label_boxes(labelled.size):
        inside = (box[0] + 2, box[1] + 2)
        # the label's black badge, where the plain sheet has the clip's colour
        assert near(labelled.getpixel(inside), (0, 0, 0), 60) and not near(plain.getpixel(inside), (0, 0, 0), 60)


def test_a_sheet_is_never_larger_than_its_frames():
    jpeg, _ = made_sheet([clip(c, size=(160, 96)) for c in COLOURS], 2048, labelled=False)
    assert Image.open(io.BytesIO(jpeg)).size == (320, 192)


def test_a_clip_that_cannot_be_had_leaves_its_cell_grey():
    clips: list[bytes | None] = [
        clip(COLOURS[0]),
        None,
        b"\x00\x00\x00\x18ftypisom not a movie at all",
        clip(COLOURS[3]),
    ]
    jpeg, facts = made_sheet(clips, 512, labelled=False)
    sheet = Image.open(io.BytesIO(jpeg))
    assert [f is not None for f in facts] == [True, False, False, True]
    assert near(sheet.getpixel((3 * sheet.width // 4, sheet.height // 4)), (48, 48, 48), 12)
    with pytest.raises(UnreadableImage):
        poster.contact_sheet([None, None, None, None], 512, labelled=True)


def test_what_is_not_a_clip_we_decode_is_refused_before_decoding():
    with pytest.raises(UnreadableImage, match="not an MP4"):
        poster.first_frame(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    whole = clip(COLOURS[0])
    with pytest.raises(UnreadableImage):
        poster.first_frame(whole[: len(whole) // 3])
    # a frame over the pixel bound is refused from its header (a 4096x2304 clip of one frame)
    with pytest.raises(UnreadableImage, match="over 8,294,400 pixels"):
        poster.first_frame(encode(iter([Image.new("RGB", (64, 36))]), (4096, 2304)))
    # a codec that is not a video model's: Motion JPEG in an MP4
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("mjpeg", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        frame = av.VideoFrame.from_image(Image.new("RGB", (64, 48))).reformat(format="yuvj420p")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(UnreadableImage, match="mjpeg"):
        poster.first_frame(buf.getvalue())
