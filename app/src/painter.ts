// The region painter of Vary (Region): shapes drawn over the image, turned into the mask upstream
// wants (white = repaint, black = keep). Shapes are kept in fractions of the image, so the overlay
// can be redrawn at any size and the mask made at the image's raw size (the server scales any
// other size, but drawing at the raw size keeps the edges where the person put them).

import { h } from "./dom";

export type Tool = "brush" | "rect" | "ellipse" | "lasso" | "eraser";
type Point = [number, number];

interface Stroke {
  tool: Tool;
  points: Point[]; // fractions of the image's width and height, origin top-left
  size: number; // brush diameter as a fraction of the image's width
}

const TOOLS: Array<[Tool, string, string]> = [
  ["brush", "Brush", "B"],
  ["rect", "Rectangle", "R"],
  ["ellipse", "Ellipse", "E"],
  ["lasso", "Lasso", "L"],
  ["eraser", "Eraser", "X"],
];
const MAX_MASK_SIDE = 4096; // a larger raw image gets a proportionally smaller mask; the server scales it
const MAX_STROKES = 500; // bounds the undo history and the redraw cost
const MAX_POINTS = 4000; // per stroke

/** Draw strokes into a 2D context of `w` x `h` pixels. `erase` "cut" clears pixels (the overlay),
 * any other value paints that colour (the mask's black). */
export function drawStrokes(ctx: CanvasRenderingContext2D, w: number, hgt: number, strokes: Stroke[], colour: string, erase: string): void {
  for (const s of strokes) {
    ctx.save();
    const paint = s.tool === "eraser" ? (erase === "cut" ? "#000" : erase) : colour;
    if (s.tool === "eraser" && erase === "cut") ctx.globalCompositeOperation = "destination-out";
    ctx.fillStyle = paint;
    ctx.strokeStyle = paint;
    const pts = s.points.map(([x, y]) => [x * w, y * hgt] as Point);
    if (s.tool === "brush" || s.tool === "eraser") {
      ctx.lineWidth = Math.max(1, s.size * w);
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.beginPath();
      if (pts.length === 1) {
        ctx.arc(pts[0][0], pts[0][1], ctx.lineWidth / 2, 0, Math.PI * 2);
        ctx.fill();
      } else {
        ctx.moveTo(pts[0][0], pts[0][1]);
        for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
        ctx.stroke();
      }
    } else if (s.tool === "rect" && pts.length === 2) {
      const [[x0, y0], [x1, y1]] = pts;
      ctx.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    } else if (s.tool === "ellipse" && pts.length === 2) {
      const [[x0, y0], [x1, y1]] = pts;
      ctx.beginPath();
      ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, Math.PI * 2);
      ctx.fill();
    } else if (s.tool === "lasso" && pts.length >= 3) {
      ctx.beginPath();
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
      ctx.closePath();
      ctx.fill();
    }
    ctx.restore();
  }
}

export interface PainterOptions {
  /** The image's raw size, when known: the mask is drawn at it. */
  raw: [number, number] | null;
  onRepaint(mask: string, prompt: string): void;
  onCancel(): void;
}

/** The painter over `stage` (the element holding the image); returns its controls, to be placed
 * under the image. `close()` removes the canvas. */
export class Painter {
  readonly controls: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private strokes: Stroke[] = [];
  private current: Stroke | null = null;
  private tool: Tool = "brush";
  private size = 0.06;
  private readonly toolButtons = new Map<Tool, HTMLButtonElement>();
  private readonly repaint: HTMLButtonElement;
  private readonly undoButton: HTMLButtonElement;
  private readonly clearButton: HTMLButtonElement;
  private readonly prompt: HTMLInputElement;
  private readonly observer: ResizeObserver;

  constructor(private readonly stage: HTMLElement, private readonly options: PainterOptions) {
    this.canvas = h("canvas", { class: "paint", "aria-label": "Region to repaint: draw on the image" });
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("pointercancel", (e) => this.up(e));
    stage.append(this.canvas);
    stage.classList.add("painting");

    const tools = h("div", { class: "tools", role: "toolbar", "aria-label": "Painter tools" });
    for (const [tool, label, key] of TOOLS) {
      const button = h("button", {
        type: "button", "aria-pressed": String(tool === this.tool), "data-tool": tool, title: `${label} (${key})`,
        onclick: () => this.choose(tool),
      }, label);
      this.toolButtons.set(tool, button);
      tools.append(button);
    }
    const slider = h("input", {
      type: "range", min: "1", max: "25", value: String(Math.round(this.size * 100)), "aria-label": "Brush size",
      oninput: (e: Event) => { this.size = Number((e.target as HTMLInputElement).value) / 100; },
    });
    this.undoButton = h("button", { type: "button", onclick: () => this.undo(), title: "Undo (Ctrl+Z)" }, "Undo");
    this.clearButton = h("button", { type: "button", onclick: () => this.clear() }, "Clear");
    this.prompt = h("input", { type: "text", class: "prompt-box", maxLength: 4000, placeholder: "What to paint there (optional)", "aria-label": "Prompt for the region" });
    this.repaint = h("button", { type: "button", class: "primary", onclick: () => this.submit() }, "Repaint");
    const cancel = h("button", { type: "button", onclick: () => options.onCancel() }, "Cancel");
    this.controls = h("div", { class: "painter", role: "group", "aria-label": "Vary (Region)" },
      tools,
      h("label", { class: "size" }, "Size ", slider),
      h("div", { class: "row" }, this.undoButton, this.clearButton),
      this.prompt,
      h("div", { class: "row" }, this.repaint, cancel),
    );
    this.controls.addEventListener("keydown", (e) => this.key(e));
    this.canvas.tabIndex = 0;
    this.canvas.addEventListener("keydown", (e) => this.key(e));
    this.observer = new ResizeObserver(() => this.render());
    this.observer.observe(stage);
    this.render();
  }

  close(): void {
    this.observer.disconnect();
    this.canvas.remove();
    this.stage.classList.remove("painting");
  }

  private choose(tool: Tool): void {
    this.tool = tool;
    for (const [t, b] of this.toolButtons) b.setAttribute("aria-pressed", String(t === tool));
  }

  private key(e: KeyboardEvent): void {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") {
      e.preventDefault();
      this.undo();
    }
  }

  private at(e: PointerEvent): Point {
    const box = this.canvas.getBoundingClientRect();
    const clamp = (v: number) => Math.min(1, Math.max(0, v));
    return [clamp((e.clientX - box.left) / box.width), clamp((e.clientY - box.top) / box.height)];
  }

  private down(e: PointerEvent): void {
    if (e.button !== 0 || this.strokes.length >= MAX_STROKES) return;
    this.canvas.setPointerCapture(e.pointerId);
    const p = this.at(e);
    const twoPoints = this.tool === "rect" || this.tool === "ellipse";
    this.current = { tool: this.tool, points: twoPoints ? [p, p] : [p], size: this.size };
    this.render();
  }

  private move(e: PointerEvent): void {
    const s = this.current;
    if (!s) return;
    const p = this.at(e);
    if (s.tool === "rect" || s.tool === "ellipse") s.points[1] = p;
    else if (s.points.length < MAX_POINTS) s.points.push(p);
    this.render();
  }

  private up(e: PointerEvent): void {
    const s = this.current;
    if (!s) return;
    this.current = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    const [a, b] = [s.points[0], s.points[s.points.length - 1]];
    const tiny = (s.tool === "rect" || s.tool === "ellipse") && (Math.abs(a[0] - b[0]) < 0.005 || Math.abs(a[1] - b[1]) < 0.005);
    if (!tiny && !(s.tool === "lasso" && s.points.length < 3)) this.strokes.push(s);
    this.render();
  }

  private undo(): void {
    this.strokes.pop();
    this.render();
  }

  private clear(): void {
    this.strokes = [];
    this.render();
  }

  /** Whether anything would be repainted (erasing alone marks nothing). */
  get painted(): boolean {
    return this.strokes.some((s) => s.tool !== "eraser");
  }

  private render(): void {
    const box = this.canvas.getBoundingClientRect();
    const scale = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(box.width * scale));
    const hgt = Math.max(1, Math.round(box.height * scale));
    if (this.canvas.width !== w || this.canvas.height !== hgt) {
      this.canvas.width = w;
      this.canvas.height = hgt;
    }
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, w, hgt);
    const all = this.current ? [...this.strokes, this.current] : this.strokes;
    drawStrokes(ctx, w, hgt, all, "#ff2d55", "cut");
    this.repaint.disabled = !this.painted;
    this.undoButton.disabled = this.strokes.length === 0;
    this.clearButton.disabled = this.strokes.length === 0;
  }

  /** The mask as a PNG data URL: black, white where the person painted. */
  mask(): string {
    const img = this.stage.querySelector("img");
    let [w, hgt] = this.options.raw ?? [img?.naturalWidth || 1024, img?.naturalHeight || 1024];
    const shrink = Math.min(1, MAX_MASK_SIDE / Math.max(w, hgt));
    w = Math.max(1, Math.round(w * shrink));
    hgt = Math.max(1, Math.round(hgt * shrink));
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = hgt;
    const ctx = canvas.getContext("2d")!;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, hgt);
    drawStrokes(ctx, w, hgt, this.strokes, "#fff", "#000");
    return canvas.toDataURL("image/png");
  }

  private submit(): void {
    if (!this.painted) return;
    this.repaint.disabled = true;
    this.options.onRepaint(this.mask(), this.prompt.value.trim());
  }
}
