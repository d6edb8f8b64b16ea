"""The thumbnail's size arithmetic and the rendition URL (media/previews.py), against Pillow itself."""

from __future__ import annotations

import random

from PIL import Image

from mj_mcp.media.previews import fitted, sized_url


def test_fitted_is_the_size_pillow_gives_a_thumbnail():
    rng = random.Random(21)
    sizes = [(2048, 2048), (2912, 1632), (1632, 2912), (1024, 1024), (300, 200), (5000, 7), (7, 5000), (513, 512)]
    sizes += [(rng.randint(1, 6000), rng.randint(1, 6000)) for _ in range(500)]
    for size in sizes:
        for px in (64, 511, 512, 1024):
            img = Image.new("1", size)
            img.thumbnail((px, px))
            assert fitted(size, px) == img.size, (size, px)


def test_a_rendition_is_asked_for_only_where_the_url_carries_a_size():
    signed = "https://cdn.example/attachments/1/2/a.png?ex=662f&is=662e&hm=ca9b&width=1024&height=1024"
    assert (
        sized_url(signed, (512, 287))
        == "https://cdn.example/attachments/1/2/a.png?ex=662f&is=662e&hm=ca9b&width=512&height=287"
    )
    assert sized_url("https://sim.invalid/x/1.png?width=1024&height=576&", (512, 288)) == (
        "https://sim.invalid/x/1.png?width=512&height=288&"
    )
    for url in (
        None,
        "https://cdn.example/a.png",
        "https://platform.cdn.example/m/t.png?imageMogr2/thumbnail/!50p",
        "https://cdn.example/a.png?width=1024",
        "https://cdn.example/a.png?mywidth=1&myheight=2",
        "https://cdn.example/a.png?width=1&height=2&width=3",
    ):
        assert sized_url(url, (512, 512)) is None, url
