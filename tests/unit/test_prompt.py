"""Prompt text: parse, check and compose flags the way upstream reads them."""

from __future__ import annotations

import pytest

from mj_mcp.core import prompt


def test_urls_text_and_flags_are_split():
    p = prompt.parse("https://a.example/1.png https://a.example/2.png two cats --ar 16:9 --no dogs, birds --tile")
    assert p.urls == ["https://a.example/1.png", "https://a.example/2.png"]
    assert p.text == "two cats"
    assert p.flags == [("ar", "16:9"), ("no", "dogs, birds"), ("tile", "")]
    assert p.flag("ar") == "16:9" and p.flag("v") is None


@pytest.mark.parametrize(
    "text, hint",
    [
        ("a cat -c 50", "did you mean --c?"),
        ("a cat --chaoss 50", "did you mean --chaos?"),
        ("a cat —ar 16:9", "did you mean --ar?"),  # an em dash from a word processor
        ("a cat --fast", "use mode='fast'"),
    ],
)
def test_problems_say_what_would_work(text, hint):
    problems = prompt.problems(prompt.parse(text))
    assert problems and hint in problems[0]


def test_aliases_are_canonical_and_clean_prompts_have_no_problems():
    p = prompt.parse("a cat --aspect 2:3 --stylize 250 --version 6.1 --style raw")
    assert p.flags == [("ar", "2:3"), ("s", "250"), ("v", "6.1"), ("style", "raw")]
    assert prompt.problems(p) == []


def test_more_than_five_image_urls_is_a_problem():
    urls = " ".join(f"https://a.example/{i}.png" for i in range(6))
    assert any("at most 5" in p for p in prompt.problems(prompt.parse(urls + " mix")))


def test_compose_puts_urls_first_then_text_then_flags():
    assert prompt.compose(["https://a/1.png"], " a cat ", [("ar", "16:9")]) == "https://a/1.png a cat --ar 16:9"
