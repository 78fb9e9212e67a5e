"""Render one sentence's entities with their `rnn_ner` probabilities to a PNG.

    python benchmarks/render_scores.py MODEL --out docs/scores.png
    python benchmarks/render_scores.py MODEL --text "..." --out docs/scores.png
    python benchmarks/render_scores.py MODEL --pick-from DEV.spacy --out docs/scores.png
    python benchmarks/render_scores.py MODEL --style span --threshold 0.1 --out /tmp/alt.png

Each entity is labelled with its type and its marginal probability from
`doc.spans[spans_key].attrs["scores"]`, e.g. "PER 0.98". `--style ent`
(default) shows the best path (`doc.ents`) with displaCy's entity style;
`--style span` shows the whole span group with displaCy's span style, which
can draw overlapping spans: with `--threshold`, the recall-mode alternatives
too. `--pick-from` chooses the sentence from a DocBin instead: the one whose
prediction shows the most entity types and at least one entity below
`--unsure` probability (ties: the shorter sentence).

The HTML is screenshotted with headless Chromium (Debian: `apt-get install -y
chromium`), in two runs: one prints the page's height (`--dump-dom` after a
script writes it into the page), one takes the screenshot. Chromium's
`--window-size` is the window, not the page: with a short window the page
gets a smaller viewport and the rest of the image stays blank (Chromium 150:
a 900x122 window painted only 35 rows). So the screenshot is taken with
SLACK_PX extra height and cropped to the measured height here, with a
minimal PNG reader/writer (zlib + numpy: no Pillow needed). `--html PATH`
also keeps the HTML.
"""
import argparse
import html
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
import spacy
from spacy import displacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

COMPONENT = "rnn_ner"
# Four entity types; with the bundled-corpus LSTM model, Antofagasta (LOC)
# comes out right but unsure.
DEFAULT_TEXT = (
    "Ana Ruiz of the Chilean Mining Council said Japanese demand for copper "
    "from Antofagasta rose in March ."
)
# displaCy's own palette has no PER or MISC: one colour per CoNLL type, and
# displaCy's default grey for any other label.
COLORS = {"PER": "#aa9cfc", "ORG": "#7aecec", "LOC": "#feca74", "MISC": "#e4e7d2"}
OTHER_COLOR = "#ddd"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
CHROMIUM_TIMEOUT_S = 60
# Extra window height for the screenshot, cropped off afterwards (see above).
SLACK_PX = 300
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_TOKENS, MAX_TOKENS = 8, 30


# --- Prediction -------------------------------------------------------------------


def scored_spans(doc: Doc, key: str) -> List[Tuple[int, int, str, float]]:
    """(start, end, label, probability) of each span in the group."""
    group = doc.spans[key]
    return [(s.start, s.end, s.label_, float(p)) for s, p in zip(group, group.attrs["scores"])]


def pick_sentence(nlp: Language, path: Path, key: str, unsure: float) -> Doc:
    """The predicted doc with the most entity types that has an entity below
    `unsure`; among those the shortest. Sentences of MIN_TOKENS..MAX_TOKENS."""
    golds = [d for d in DocBin().from_disk(path).get_docs(nlp.vocab)
             if MIN_TOKENS <= len(d) <= MAX_TOKENS]
    if not golds:
        raise SystemExit(f"{path}: no doc of {MIN_TOKENS}-{MAX_TOKENS} tokens")
    inputs = [Doc(nlp.vocab, words=[t.text for t in d],
                  spaces=[bool(t.whitespace_) for t in d]) for d in golds]
    best = None
    best_rank = None
    for doc in nlp.pipe(inputs):
        spans = scored_spans(doc, key)
        rank = (any(p < unsure for *_, p in spans), len({s[2] for s in spans}), -len(doc))
        if best_rank is None or rank > best_rank:
            best, best_rank = doc, rank
    if not best_rank[0]:
        print(f"no sentence has an entity below {unsure}: taking the one with most types",
              file=sys.stderr)
    return best


def displacy_html(doc: Doc, key: str, style: str, title: Optional[str]) -> str:
    spans = scored_spans(doc, key)
    labels = {}
    items: List[Dict[str, Any]] = []
    for start, end, label, prob in spans:
        name = f"{label} {prob:.2f}"
        labels[name] = COLORS.get(label, OTHER_COLOR)
        span = doc[start:end]
        if style == "ent":
            items.append({"start": span.start_char, "end": span.end_char, "label": name})
        else:
            items.append({"start_token": start, "end_token": end, "label": name})
    if style == "ent":
        data = {"text": doc.text, "ents": items, "title": title}
    else:
        data = {"text": doc.text, "spans": items, "tokens": [t.text for t in doc],
                "title": title}
    return displacy.render(data, style=style, manual=True, page=False, jupyter=False,
                           options={"colors": labels})


def page(body: str, width: int, caption: Optional[str]) -> str:
    """A page of `width` CSS px whose script writes its own height into
    #page-height, where `--dump-dom` can read it."""
    cap = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rnn_ner scores</title>
<style>
html, body {{ margin: 0; padding: 0; background: #fff; }}
body {{ width: {width}px; font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }}
#content {{ padding: 12px 20px 8px 20px; overflow: hidden; }}
.entities, .spans {{ line-height: 2.5 !important; margin-bottom: 0 !important; }}
/* an entity and its label never break across lines */
.entities mark, .spans span span span {{ white-space: nowrap; }}
h2 {{ font-size: 16px; margin: 0 0 4px 0; }}
.caption {{ color: #555; font-size: 12px; margin: 8px 0 0 0; }}
</style></head>
<body><div id="content">{body}{cap}</div>
<div id="page-height" hidden></div>
<script>
document.getElementById("page-height").textContent =
  Math.ceil(document.getElementById("content").getBoundingClientRect().height);
</script>
</body></html>
"""


# --- Screenshot -------------------------------------------------------------------


def find_chromium(explicit: Optional[str]) -> str:
    if explicit:
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found: apt-get install -y chromium (or pass --chromium PATH)")


def chromium(binary: str, args: Sequence[str]) -> str:
    # A fresh profile each run: nothing from an earlier run (or a user's
    # browser) leaks in, and a leftover profile lock can't block us.
    with tempfile.TemporaryDirectory(prefix="render-scores-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    if proc.returncode != 0:
        raise SystemExit(f"chromium failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def screenshot(
    binary: str, html_path: Path, out: Path, width: int, scale: float
) -> Tuple[int, int]:
    url = html_path.resolve().as_uri()
    dom = chromium(binary, [f"--window-size={width},2000", "--dump-dom", url])
    found = re.search(r'id="page-height"[^>]*>(\d+)<', dom)
    if not found:
        raise SystemExit("could not read the page height from chromium's --dump-dom output")
    height = int(found.group(1))
    with tempfile.TemporaryDirectory(prefix="render-scores-shot-") as tmp:
        shot = Path(tmp) / "shot.png"
        chromium(binary, [f"--window-size={width},{height + SLACK_PX}",
                          f"--force-device-scale-factor={scale}", f"--screenshot={shot}", url])
        if not shot.exists() or shot.stat().st_size == 0:
            raise SystemExit("chromium wrote no screenshot")
        image = read_png(shot)
    rows = int(round(height * scale))
    if image.shape[0] < rows:
        raise SystemExit(f"screenshot is {image.shape[0]} px high, expected at least {rows}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(out, image[:rows])
    return width, height


# --- PNG, just enough for Chromium's screenshots ------------------------------


def read_png(path: Path) -> numpy.ndarray:
    """An 8-bit, non-interlaced RGB or RGBA PNG as an (H, W, C) uint8 array."""
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG")
    pos = len(PNG_SIGNATURE)
    idat = []
    header = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: no IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: only 8-bit non-interlaced RGB/RGBA is supported")
    raw = numpy.frombuffer(zlib.decompress(b"".join(idat)), dtype=numpy.uint8)
    raw = raw.reshape(height, 1 + width * channels)
    return _unfilter(raw[:, 0], raw[:, 1:].astype(numpy.int32), channels).reshape(
        height, width, channels
    )


def _unfilter(filters: numpy.ndarray, rows: numpy.ndarray, bpp: int) -> numpy.ndarray:
    """Undo PNG's per-row filters (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    out = numpy.zeros(rows.shape, dtype=numpy.int32)
    prior = numpy.zeros(rows.shape[1], dtype=numpy.int32)
    for y, kind in enumerate(filters.tolist()):
        row = rows[y]
        if kind == 0:
            cur = row.copy()
        elif kind == 1:
            cur = numpy.cumsum(row.reshape(-1, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:
            cur = (row + prior) % 256
        elif kind in (3, 4):
            # Each byte depends on the one bpp to its left: plain Python.
            cur_list = [0] * len(row)
            up = prior.tolist()
            vals = row.tolist()
            for x, v in enumerate(vals):
                left = cur_list[x - bpp] if x >= bpp else 0
                if kind == 3:
                    pred = (left + up[x]) // 2
                else:
                    upleft = up[x - bpp] if x >= bpp else 0
                    p = left + up[x] - upleft
                    pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - upleft)
                    pred = left if pa <= pb and pa <= pc else (up[x] if pb <= pc else upleft)
                cur_list[x] = (v + pred) % 256
            cur = numpy.asarray(cur_list, dtype=numpy.int32)
        else:
            raise ValueError(f"bad PNG filter type {kind}")
        out[y] = cur
        prior = cur
    return out.astype(numpy.uint8)


def write_png(path: Path, image: numpy.ndarray) -> None:
    """Write an (H, W, 3|4) uint8 array; every row with the Sub filter, which
    suits flat-coloured screenshots."""
    height, width, channels = image.shape
    rows = image.reshape(height, width * channels).astype(numpy.int16)
    sub = rows.copy()
    sub[:, channels:] -= rows[:, :-channels]
    raw = numpy.empty((height, 1 + width * channels), dtype=numpy.uint8)
    raw[:, 0] = 1
    raw[:, 1:] = sub % 256

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    color = {3: 2, 4: 6}[channels]
    path.write_bytes(
        PNG_SIGNATURE
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


# --- Main -------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="pipeline directory or package with an rnn_ner component")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--text", default=None, help="the sentence (default: a built-in one)")
    source.add_argument("--pick-from", type=Path, default=None,
                        help="choose the sentence from this DocBin (.spacy)")
    p.add_argument("--unsure", type=float, default=0.9,
                   help="--pick-from wants an entity below this probability (default 0.9)")
    p.add_argument("--style", choices=("ent", "span"), default="ent",
                   help="displaCy style: ent = best path, span = the whole span group")
    p.add_argument("--threshold", type=float, default=None,
                   help="set the component's recall-mode threshold (use with --style span)")
    p.add_argument("--temperature", type=float, default=None,
                   help="set the component's temperature (default: as configured)")
    p.add_argument("--component", default=COMPONENT, help="component name (default rnn_ner)")
    p.add_argument("--title", default=None, help="heading above the sentence")
    p.add_argument("--no-caption", action="store_true", help="leave out the caption line")
    p.add_argument("--width", type=int, default=900, help="page width in CSS px (default 900)")
    p.add_argument("--scale", type=float, default=2.0, help="device scale factor (default 2)")
    p.add_argument("--chromium", default=None, help="browser binary (default: found on PATH)")
    p.add_argument("--html", type=Path, default=None, help="also write the HTML here")
    p.add_argument("--out", type=Path, default=Path("docs/scores.png"), help="the PNG")
    args = p.parse_args(argv)
    if args.threshold is not None and not 0.0 < args.threshold <= 1.0:
        p.error("--threshold must be in (0, 1]")
    if args.temperature is not None and not args.temperature > 0:
        p.error("--temperature must be > 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    binary = find_chromium(args.chromium)
    nlp = spacy.load(args.model)
    if args.component not in nlp.pipe_names:
        raise SystemExit(f"no component {args.component!r} in {args.model} ({nlp.pipe_names})")
    ner = nlp.get_pipe(args.component)
    key = ner.spans_key or args.component
    ner.spans_key = key
    ner.threshold = args.threshold
    if args.temperature is not None:
        if not hasattr(ner, "temperature"):
            raise SystemExit(f"component {args.component!r} has no temperature setting")
        ner.temperature = args.temperature
    if args.pick_from is not None:
        doc = pick_sentence(nlp, args.pick_from, key, args.unsure)
    else:
        doc = nlp(args.text or DEFAULT_TEXT)
    spans = scored_spans(doc, key)
    if not spans:
        raise SystemExit(f"no entities predicted in: {doc.text}")
    for start, end, label, prob in spans:
        print(f"{prob:.3f}  {label:<5} {doc[start:end].text}")
    caption = None
    if not args.no_caption:
        what = "best-path entities" if args.style == "ent" else "span group"
        if args.threshold is not None:
            what += f" (recall mode, threshold {args.threshold:g})"
        temperature = getattr(ner, "temperature", None)
        t_note = f", temperature {temperature:g}" if temperature is not None else ""
        caption = f"{args.component}: {what} with their marginal probabilities{t_note}"
    body = displacy_html(doc, key, args.style, args.title)
    with tempfile.TemporaryDirectory(prefix="render-scores-html-") as tmp:
        html_path = Path(args.html) if args.html else Path(tmp) / "scores.html"
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(page(body, args.width, caption), encoding="utf8")
        width, height = screenshot(binary, html_path, args.out, args.width, args.scale)
    print(f"wrote {args.out} ({width}x{height} CSS px at scale {args.scale:g})")


if __name__ == "__main__":
    main()
