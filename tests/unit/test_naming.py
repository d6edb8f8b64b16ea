"""Names: readable, unique, showing lineage, bounded."""

from __future__ import annotations

import itertools

import pytest

from mj_mcp.core import naming
from mj_mcp.errors import InvalidInput


@pytest.mark.parametrize(
    "prompt, name",
    [
        ("Lamborghini speeds inside a volcano", "lamborghini-volcano"),
        ("a red fox in snow", "fox-snow"),  # on a tie the later word (the noun) wins
        ("https://x.example/a.png a castle --ar 16:9 --v 6", "castle"),  # URLs and flags are not words
        ("the of and", "image"),  # only stop words: the fallback
        ("", "image"),
        ("supercalifragilisticexpialidocious antidisestablishmentarianism", "supercalifragili-antidisestablish"),
    ],
)
def test_slug_takes_the_two_longest_content_words(prompt, name):
    assert naming.slug(prompt) == name


def test_derived_names_show_lineage_and_stay_within_the_limit():
    assert naming.derived(parent="fox-snow", action="upscale2") == "fox-snow.u2"
    assert naming.derived(parent="fox-snow.v3", action="zoom_out_2x") == "fox-snow.v3.z2"
    deep = "root"
    for step in itertools.islice(itertools.cycle(["variation1", "upscale2", "pan_left"]), 40):
        deep = naming.derived(parent=deep, action=step)
        assert len(deep) <= naming.MAX_NAME and deep.startswith("root.")
    assert naming.derived(parent=None, prompt=None, fallback="blend-a-b") == "blend-a-b"


def test_candidates_count_up_within_the_limit():
    assert list(itertools.islice(naming.candidates("fox"), 3)) == ["fox", "fox-2", "fox-3"]
    long = "x" * 70
    first, *rest = itertools.islice(naming.candidates(long), 12)
    assert len(first) == naming.MAX_NAME and all(len(c) <= naming.MAX_NAME for c in rest)
    assert rest[-1].endswith("-12")


@pytest.mark.parametrize("bad", ["", "Fox", "-fox", "fox snow", "a" * 65, "fox/../x", "é"])
def test_caller_names_outside_the_rules_are_refused_and_quoted_briefly(bad):
    with pytest.raises(InvalidInput) as err:
        naming.checked(bad)
    assert len(str(err.value)) < 200


def test_a_huge_name_is_quoted_by_a_short_prefix():
    with pytest.raises(InvalidInput) as err:
        naming.checked("n" * 10_000)
    assert "10,000 characters" in str(err.value) and len(str(err.value)) < 250
