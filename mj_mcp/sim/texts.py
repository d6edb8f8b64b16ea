"""What the simulator answers for the text endpoints: describe's four prompts, shorten's candidates and
translate's English (docs/upstream.md, "The simulator"). Deterministic stand-ins, not language models.

- **describe**: four prompts in upstream's shape (a subject, "in the style of" and a few style terms,
  then ``--ar W:H`` of the picture), built from the picture's own prompt when the simulator made it,
  else from words picked by the URL.
- **shorten**: up to five shorter prompts made by dropping words and flags; image URLs stay in front.
- **translate**: a small word table for Chinese, Japanese, Spanish, French and German; a word it does
  not know stays as it is, and text that is already English comes back unchanged.
"""

from __future__ import annotations

import math
import random
import re

from ..core import prompt
from .render import seed_of

_SUBJECTS = (
    "a lighthouse on a rocky shore",
    "a fox resting in tall grass",
    "an old tram in a rainy street",
    "a paper boat on a pond",
    "a glass teapot on a windowsill",
    "a mountain village at dusk",
    "a koi pond under cherry blossoms",
    "a robot reading in a library",
)
_OPENINGS = ("{s}", "a picture of {s}", "{s}, seen from close up", "an image of {s}")
_STYLES = (
    "soft pastel gradients",
    "bold colour fields",
    "dreamy atmospheres",
    "luminous shadows",
    "flowing silhouettes",
    "cinematic lighting",
    "playful geometry",
    "hand-drawn animation",
    "muted earth tones",
    "high-contrast compositions",
    "minimalist shapes",
    "vintage film grain",
)


def describe(text: str, aspect: tuple[int, int], key: object) -> list[str]:
    """Four prompts for a picture: ``text`` is its own prompt ("" for a foreign one), ``key`` picks
    the words (a URL, an image id)."""
    rng = random.Random(seed_of("describe", text, key))
    subject = text.strip().rstrip(",.") or rng.choice(_SUBJECTS)
    out = []
    for k, opening in enumerate(_OPENINGS):
        styles = rng.sample(_STYLES, 3 + k % 2)
        out.append(f"{opening.format(s=subject)}, in the style of {', '.join(styles)} --ar {aspect[0]}:{aspect[1]}")
    return out


_FILLER = {
    "ultra detailed",
    "highly detailed",
    "very detailed",
    "masterpiece",
    "best quality",
    "8k",
    "4k",
    "trending on artstation",
    "award winning",
    "hyperrealistic",
    "high resolution",
    "sharp focus",
}
_SMALL = {"a", "an", "the", "of", "with", "from", "in", "on", "at", "and", "very"}


def shorten(text: str) -> list[str]:
    """Up to five candidates, each shorter than ``text``, none repeated; ``text`` itself when nothing
    can go."""
    parsed = prompt.parse(text)
    flags = [f"--{name} {value}".strip() for name, value in parsed.flags]
    keep_ar = [f for f in flags if f.split()[0] in ("--ar", "--aspect")]
    phrases = [p.strip() for p in parsed.text.split(",") if p.strip()]
    plain = [p for p in phrases if p.lower() not in _FILLER] or phrases[:1]
    terse = [" ".join(w for w in p.split() if w.lower() not in _SMALL) or p for p in plain]
    half_count = max(1, math.ceil(len(plain) / 2))
    candidates = [
        (plain[:half_count], flags),
        (plain[:1], flags),
        (terse, keep_ar),
        (plain[:-1] or plain, keep_ar),
        (terse[:half_count], []),
    ]
    out: list[str] = []
    for words, kept in candidates:
        line = prompt.compose(parsed.urls, ", ".join(words), [])
        line = " ".join([line, *kept]).strip()
        if line and line not in out and len(line) < len(text.strip()):
            out.append(line)
    return out[:5] or [text.strip()]


# --- translate: a small table, longest match first --------------------------------------------------

_CJK = {
    "精致": "exquisite",
    "无暇": "flawless",
    "无瑕": "flawless",
    "洁白": "pure white",
    "天使": "angel",
    "一只": "a",
    "一个": "a",
    "猫": "cat",
    "狗": "dog",
    "坐在": "sitting on",
    "桌子": "table",
    "上": "",
    "美丽": "beautiful",
    "女孩": "girl",
    "日落": "sunset",
    "山": "mountain",
    "海": "sea",
    "湖": "lake",
    "城市": "city",
    "夜晚": "night",
    "森林": "forest",
    "雪": "snow",
    "花": "flower",
    "龙": "dragon",
    "红色": "red",
    "蓝色": "blue",
    "金色": "golden",
    "和": "and",
    "在": "in",
    "的": "",
    "桜": "cherry blossoms",
    "富士山": "Mount Fuji",
    "夜": "night",
    "空": "sky",
    "の": "",
    "と": "and",
    "に": "in",
    "が": "",
    "は": "",
    "を": "",
    "美しい": "beautiful",
    "少女": "girl",
    "街": "street",
    # full-width punctuation: comma, full stop, enumeration comma, exclamation and question marks
    "\uff0c": ", ",
    "\u3002": ". ",
    "\u3001": ", ",
    "\uff01": "! ",
    "\uff1f": "? ",
}
_WORDS = {
    "es": {
        "un": "a",
        "una": "a",
        "el": "the",
        "la": "the",
        "los": "the",
        "las": "the",
        "de": "of",
        "del": "of the",
        "en": "in",
        "con": "with",
        "y": "and",
        "sobre": "on",
        "gato": "cat",
        "perro": "dog",
        "mesa": "table",
        "sentado": "sitting",
        "hermosa": "beautiful",
        "hermoso": "beautiful",
        "montaña": "mountain",
        "atardecer": "sunset",
        "mar": "sea",
        "ciudad": "city",
        "noche": "night",
        "bosque": "forest",
        "rojo": "red",
        "azul": "blue",
    },
    "fr": {
        "un": "a",
        "une": "a",
        "le": "the",
        "la": "the",
        "les": "the",
        "de": "of",
        "du": "of the",
        "dans": "in",
        "avec": "with",
        "et": "and",
        "sur": "on",
        "chat": "cat",
        "chien": "dog",
        "table": "table",
        "assis": "sitting",
        "belle": "beautiful",
        "beau": "beautiful",
        "montagne": "mountain",
        "coucher": "setting",
        "soleil": "sun",
        "mer": "sea",
        "ville": "city",
        "nuit": "night",
        "forêt": "forest",
        "rouge": "red",
        "bleu": "blue",
    },
    "de": {
        "ein": "a",
        "eine": "a",
        "einer": "a",
        "der": "the",
        "die": "the",
        "das": "the",
        "dem": "the",
        "den": "the",
        "auf": "on",
        "im": "in the",
        "in": "in",
        "mit": "with",
        "und": "and",
        "katze": "cat",
        "hund": "dog",
        "tisch": "table",
        "sitzt": "sitting",
        "schöne": "beautiful",
        "schön": "beautiful",
        "berg": "mountain",
        "sonnenuntergang": "sunset",
        "meer": "sea",
        "stadt": "city",
        "nacht": "night",
        "wald": "forest",
        "rot": "red",
        "blau": "blue",
    },
}
_CJK_LONGEST = max(len(w) for w in _CJK)
_TOKEN = re.compile(r"(\w+|\W+)", re.UNICODE)


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"


def _cjk(text: str) -> str:
    """Longest match first; a character the table does not know stays."""
    out: list[str] = []
    i = 0
    while i < len(text):
        for n in range(min(_CJK_LONGEST, len(text) - i), 0, -1):
            if text[i : i + n] in _CJK:
                word = _CJK[text[i : i + n]]
                if word and out and not out[-1].endswith((" ", "\n")) and word[0].isalnum():
                    out.append(" ")
                out.append(word)
                i += n
                break
        else:
            out.append(text[i])
            i += 1
    return re.sub(r"\s+([,.!?])", r"\1", re.sub(r"[ \t]+", " ", "".join(out))).strip()


def _latin(text: str) -> str | None:
    """Word by word in the language whose table knows at least half the words; None if none does."""
    words = [w.lower() for w in re.findall(r"\w+", text, re.UNICODE)]
    if not words:
        return None
    best = max(_WORDS, key=lambda lang: sum(w in _WORDS[lang] for w in words))
    table = _WORDS[best]
    if sum(w in table for w in words) * 2 < len(words):
        return None
    out = []
    for token in _TOKEN.findall(text):
        word = table.get(token.lower()) if token[:1].isalnum() else None
        out.append(word if word is not None else token)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def translate(content: str) -> str:
    """English for ``content``: the table's words, or the text itself when it is English already."""
    english = _cjk(content) if any(_is_cjk(ch) for ch in content) else _latin(content)
    if english is None:
        return content
    return english[:1].upper() + english[1:]
