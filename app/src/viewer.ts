// What the person sees: one record (an image with its buttons, progress, lineage, painter; an edit's
// four results; a video's four clips; describe's prompts) or the gallery of list_images. Every picture
// comes through the app-only tool view_image, every clip through a resources/read, as data: URLs,
// because a host's CSP blocks the CDN's URLs.

import { buttonsFor, labelOf, quadrantActions, spoken, toolFor } from "./catalogue";
import { h, pictureOf, textOf } from "./dom";
import { Painter } from "./painter";
import type { Catalogue, ImageList, ImageRecord, ImageSummary, ToolResult } from "./types";

export interface Services {
  catalogue: Catalogue;
  call(tool: string, args: Record<string, unknown>): Promise<ToolResult>;
  /** Tell the model what the person did (a model-context update, or a message). */
  tell(line: string): void;
  /** Save a resource (the full image, a clip) through the host, when it can; false when it cannot. */
  download(uri: string | null | undefined, name: string, mimeType: string): Promise<boolean>;
  /** A video clip's resource as a data: URL (null: not a clip). */
  media(uri: string): Promise<string | null>;
}

const POLL_MS = 1500; // a running job's progress and preview refresh (the issue asks for <= 2 s)
const POLL_LIMIT_MS = 30 * 60 * 1000; // then stop asking; the job goes on and can be reopened
const THUMB_PX = 256;
const FIND_TRIES = 5; // list_images looks for the job a model's call started, for about 4 s
const THUMBS_AT_ONCE = 3;
const THUMBS_MAX = 60; // a gallery of list_images' up to 200 lines loads the first pictures only
const CLIPS_KEPT = 8; // data: URLs of the clips last shown (two videos), so a re-render reads none again

type Screen =
  | { kind: "image"; name: string }
  | { kind: "gallery"; list: ImageList };

export class Viewer {
  private record: ImageRecord | null = null;
  private picture: string | null = null;
  private history: Screen[] = [];
  private screen: Screen | null = null;
  private generation = 0; // bumped on every navigation: stale polls and loads stop
  private painter: Painter | null = null;
  private selected: number | null = null; // the grid quadrant picked by a click
  private busy = false;
  private clips = new Map<string, Promise<string | null>>();
  private status!: HTMLElement;

  constructor(private readonly root: HTMLElement, private readonly svc: Services) {}

  /** The display size to ask for: the column's width in device pixels, in steps of 256. */
  private maxPx(): number {
    const width = (this.root.clientWidth || 600) * (window.devicePixelRatio || 1);
    return Math.min(2048, Math.max(768, Math.ceil(width / 256) * 256));
  }

  // ---- what the host sends -------------------------------------------------------------------

  /** The tool's arguments arrived; its result has not (a generating tool waits up to its
   * wait_seconds). Show that something is coming, and find the job it started to show its progress. */
  input(tool: string | undefined, args: Record<string, unknown>): void {
    if (this.screen) return;
    const prompt = typeof args.prompt === "string" ? args.prompt : typeof args.image === "string" ? args.image : "";
    if (tool === this.tool("list")) return this.message("Loading images…");
    this.root.replaceChildren(
      h("div", { class: "stage pending", "aria-busy": "true" }, h("div", { class: "placeholder" })),
      h("p", { class: "muted" }, prompt ? `Working on: ${prompt}` : "Working…"),
      h("progress", { "aria-label": "Waiting for the result" }),
    );
    const gen = this.generation;
    if (tool === this.tool("get") && typeof args.ref === "string") void this.open(args.ref, false);
    else if (tool && this.svc.catalogue.tools[tool]?.generates) void this.findJob(gen, tool, args);
  }

  /** The tool that runs one of the server's operations (its table, in the catalogue). */
  private tool(operation: string): string {
    return toolFor(operation, this.svc.catalogue);
  }

  /** The session's newest running image that this call can have started (its requested name; the
   * image it acts on; a root image whose prompt begins like the call's). The tool's own result,
   * when it comes, replaces whatever this shows. */
  private async findJob(gen: number, tool: string, args: Record<string, unknown>): Promise<void> {
    for (let attempt = 0; attempt < FIND_TRIES && gen === this.generation; attempt++) {
      await sleep(attempt ? 1000 : 250);
      let list: ImageList | undefined;
      try {
        list = (await this.svc.call(this.tool("list"), { limit: 10 })).structuredContent as unknown as ImageList;
      } catch {
        return;
      }
      if (gen !== this.generation) return;
      const fromImage = this.svc.catalogue.tools[tool]?.from_image ?? false;
      const hit = list?.images?.find((image) => image.status === "running" && startedBy(fromImage, args, image));
      if (hit) return this.open(hit.name, false);
    }
  }

  /** A tool result for this view: an image record, a list of images, or an error. */
  result(result: ToolResult): void {
    const sc = result.structuredContent as Record<string, unknown> | undefined;
    if (sc && Array.isArray(sc.images)) return this.showGallery(sc as unknown as ImageList, false);
    if (sc && typeof sc.name === "string" && typeof sc.status === "string") {
      const record = sc as unknown as ImageRecord;
      this.go({ kind: "image", name: record.name }, false);
      const error = result.isError ? textOf(result) : null;
      return this.showRecord(record, pictureOf(result), error);
    }
    this.message(textOf(result) || "No result.", result.isError);
  }

  /** The call was cancelled: its job (if it started one) goes on upstream, so an image already
   * found stays and is still followed. */
  cancelled(reason: string): void {
    const text = `The call was cancelled${reason ? ` (${reason})` : ""}`;
    if (this.screen?.kind === "image") return this.note(`${text}; the job goes on.`);
    this.generation++;
    this.message(`${text}.`, true);
  }

  stop(): void {
    this.generation++;
  }

  // ---- navigation -----------------------------------------------------------------------------

  private go(screen: Screen, remember: boolean): number {
    if (remember && this.screen) this.history.push(this.screen);
    this.screen = screen;
    this.painter?.close();
    this.painter = null;
    this.selected = null;
    return ++this.generation;
  }

  private back(): void {
    const previous = this.history.pop();
    if (!previous) return;
    this.screen = null;
    if (previous.kind === "gallery") this.showGallery(previous.list, false, true);
    else this.open(previous.name, false, true);
  }

  /** Show an image by name: its record and display picture come from view_image. */
  async open(name: string, remember = true, restoring = false): Promise<void> {
    const gen = restoring ? this.go({ kind: "image", name }, false) : this.go({ kind: "image", name }, remember);
    this.message(`Loading ${name}…`);
    const answer = await this.view(name);
    if (gen !== this.generation) return;
    if (!answer) return;
    this.showRecord(answer.record, answer.picture, null, true);
  }

  private async view(name: string, px = this.maxPx()): Promise<{ record: ImageRecord; picture: string | null } | null> {
    try {
      const result = await this.svc.call(this.tool("picture"), { image: name, max_px: px });
      const record = result.structuredContent as unknown as ImageRecord | undefined;
      if (result.isError || !record || typeof record.name !== "string") {
        this.note(textOf(result) || `Cannot show ${name}.`, true);
        return null;
      }
      return { record, picture: pictureOf(result) };
    } catch (err) {
      this.note(`Cannot reach the server: ${errorText(err)}`, true);
      return null;
    }
  }

  // ---- one image ------------------------------------------------------------------------------

  /** `sharp`: the picture is view_image's display rendition, not the thumbnail a tool result
   * carries for the model (shown at once, then replaced by the rendition). */
  private showRecord(record: ImageRecord, picture: string | null, error: string | null, sharp = false): void {
    const gen = this.generation;
    this.record = record;
    this.picture = picture;
    this.render(error);
    if (record.status === "completed" && !sharp && record.kind !== "texts") void this.sharpen(gen, record.name);
    if (record.status === "running") void this.follow(gen, record.name);
  }

  private async sharpen(gen: number, name: string): Promise<void> {
    // Ask for the rendition once the thumbnail is on screen: the server's decode of the full image
    // would otherwise compete for the CPU with the view's first paint, and so would the SDK, which
    // builds its wire schemas (a 10-90 ms task here) when the view makes its first tool call.
    await this.painted();
    if (gen !== this.generation) return;
    const answer = await this.view(name);
    if (gen !== this.generation || !answer) return;
    this.update(answer.record, answer.picture);
  }

  /** Once the stage's picture (if any) is painted. */
  private async painted(): Promise<void> {
    const shown = this.root.querySelector<HTMLImageElement>(".stage img");
    if (shown) await shown.decode().then(afterNextPaint, () => undefined);
  }

  /** Poll view_image while the job runs: progress and upstream's latest partial picture. */
  private async follow(gen: number, name: string): Promise<void> {
    const until = Date.now() + POLL_LIMIT_MS;
    while (gen === this.generation && Date.now() < until) {
      await sleep(POLL_MS);
      if (gen !== this.generation) return;
      const answer = await this.view(name);
      if (gen !== this.generation) return;
      if (!answer) continue;
      this.update(answer.record, answer.picture);
      if (answer.record.status !== "running") return;
    }
    if (gen === this.generation) this.note(`${name} is still generating. Ask for it again later; the job goes on.`);
  }

  /** Fold a fresher view of the same image in: a full render only when what it is has changed. */
  private update(record: ImageRecord, picture: string | null): void {
    const before = this.record;
    this.record = record;
    if (picture) this.picture = picture;
    if (!before || before.status !== record.status || before.kind !== record.kind || !this.root.querySelector(".stage img")) {
      this.render(null);
      return;
    }
    const img = this.root.querySelector<HTMLImageElement>(".stage img");
    if (img && picture && img.src !== picture) img.src = picture;
    const bar = this.root.querySelector<HTMLProgressElement>("progress.job");
    if (bar) bar.value = record.progress;
    const pct = this.root.querySelector(".pct");
    if (pct) pct.textContent = progressText(record);
  }

  private render(error: string | null): void {
    const record = this.record;
    if (!record) return;
    const cat = this.svc.catalogue;
    // A running job's partial picture is small (upstream's are 256-512 px): shown at the column's width.
    const partial = record.status === "running" && this.picture !== null;
    const done = record.status === "completed";
    const texts = done && record.kind === "texts";
    const stage = texts ? this.prompts(record) : h("div", { class: partial ? "stage partial" : "stage", "data-kind": record.kind ?? "" });
    const ratio = record.width && record.height ? `${record.width} / ${record.height}` : "1 / 1";
    if (texts) {
      // the prompts are the stage
    } else if (this.picture) {
      // elementtiming: the Element Timing API reports when the picture is painted (bench/ reads it).
      const img = h("img", { src: this.picture, alt: `${record.name}${record.prompt ? `: ${record.prompt}` : ""}`, draggable: false });
      img.setAttribute("elementtiming", "stage");
      stage.append(img);
    } else {
      stage.style.aspectRatio = ratio;
      stage.append(h("div", { class: "placeholder", "aria-hidden": "true" }));
    }
    if (done && record.kind === "grid") stage.append(this.quadrants(record));
    if (done && record.results?.length === 4) stage.append(this.results(record.results));
    if (done && record.clips?.length) stage.append(this.clipGrid(record.clips));

    const head = h("header", {},
      this.history.length ? h("button", { type: "button", class: "back", onclick: () => this.back(), "aria-label": "Back" }, "←") : null,
      h("h2", {}, record.name),
      h("span", { class: "badges" },
        record.kind ? h("span", { class: "badge" }, record.kind) : null,
        record.raw_width && record.raw_height ? h("span", { class: "badge" }, `${record.raw_width}×${record.raw_height}`) : null,
        record.simulated ? h("span", { class: "badge sim", title: "Made by the built-in simulator, not Midjourney" }, "simulated") : null,
      ),
    );

    const progress = record.status === "running"
      ? h("div", { class: "progress" },
          h("progress", { class: "job", max: 100, value: record.progress, "aria-label": `${record.name} progress` }),
          h("span", { class: "pct", "aria-live": "polite" }, progressText(record)))
      : null;
    const failed = record.status === "failed"
      ? h("p", { class: "error", role: "alert" }, `Failed: ${record.error ? `${record.error.code}: ${record.error.message}` : "unknown error"}`)
      : null;

    const names = buttonsFor(record, cat);
    const actions = names.length
      ? h("div", { class: `actions ${record.kind === "grid" ? "grid5" : ""}`, role: "group", "aria-label": "Midjourney actions" },
          ...names.map((name) => this.actionButton(record, name)))
      : null;

    const lineage = h("p", { class: "lineage" },
      record.parent
        ? h("span", {}, "from ", h("button", { type: "button", class: "link", onclick: () => this.open(record.parent!) }, record.parent),
            record.action && record.action !== "generate" ? ` · ${labelOf(record.action, cat)}` : "")
        : null,
      ...(record.sources ?? []).filter((s) => s !== record.parent).map((s) => h("span", { class: "source" }, ` · with ${s.startsWith("https://") ? "an image URL" : s}`)),
    );
    const prompt = record.prompt ? h("p", { class: "prompt" }, record.prompt) : null;
    // An edit is saved result by result (each opens with its own row).
    const save = done && record.kind !== "edits" ? this.saveRow(record) : null;
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });

    this.root.replaceChildren(head, stage, progress ?? "", failed ?? "", actions ?? "", prompt ?? "", lineage, save ?? "", this.status);
    if (error) this.note(error, true);
  }

  private actionButton(record: ImageRecord, name: string): HTMLButtonElement {
    const action = this.svc.catalogue.actions[name];
    // A video's four extends share Midjourney's label: the clip's number tells them apart.
    const clip = record.kind === "videos" ? action.quadrant : null;
    return h("button", {
      type: "button", class: "act", "data-action": name, "aria-label": clip ? labelOf(name, this.svc.catalogue) : spoken(action),
      title: action.meaning, disabled: this.busy, onclick: () => this.act(record, name),
    }, clip ? h("b", {}, `${clip} `) : null, action.label);
  }

  /** The 2x2 overlay of a grid: a click anywhere in a quadrant picks it (or unpicks it), which offers
   * its own actions (U_n, V_n) right there. Its number is the button keyboards and screen readers use. */
  private quadrants(record: ImageRecord): HTMLElement {
    const overlay = h("div", { class: "quads" });
    for (let n = 1; n <= 4; n++) {
      const mine = quadrantActions(record, this.svc.catalogue, n);
      const picked = this.selected === n;
      const toggle = (event: MouseEvent) => {
        // A click on one of the quadrant's own actions is that action, not a pick.
        if ((event.target as Element).closest(".qacts")) return;
        this.selected = picked ? null : n;
        this.render(null);
        this.focusQuadrant(n);
      };
      // The number button's own click (a key press on it, too) reaches the quadrant's handler by bubbling.
      const cell = h("div", { class: `quad${picked ? " picked" : ""}`, "data-quadrant": String(n), onclick: toggle },
        h("button", { type: "button", class: "qnum", "aria-pressed": String(picked), "aria-label": `Quadrant ${n}` }, String(n)),
        picked ? h("div", { class: "qacts" }, ...mine.map((name) => this.actionButton(record, name))) : null,
      );
      overlay.append(cell);
    }
    return overlay;
  }

  private focusQuadrant(n: number): void {
    this.root.querySelector<HTMLButtonElement>(`.quad[data-quadrant="${n}"] .qnum`)?.focus();
  }

  /** An edit's four results over its picture, 1-4 as a grid's quadrants: a click anywhere in one opens it. */
  private results(names: string[]): HTMLElement {
    return h("div", { class: "quads" }, ...names.map((name, i) =>
      h("div", { class: "quad", "data-quadrant": String(i + 1), title: name, onclick: () => this.open(name) },
        h("button", { type: "button", class: "qnum", "aria-label": `Result ${i + 1}: ${name}` }, String(i + 1)))));
  }

  /** A video's four clips over its poster (their first frames): each plays muted while pointed at or
   * focused, and in full, with sound and controls, on a click. */
  private clipGrid(uris: string[]): HTMLElement {
    return h("div", { class: "quads" }, ...uris.map((uri, i) => {
      const n = i + 1;
      const video = h("video", { muted: true, loop: true, playsInline: true, preload: "auto", "aria-label": `Clip ${n}` });
      const play = () => void (video.src && video.play().catch(() => undefined));
      const rest = () => cell.classList.contains("full") || video.pause();
      const cell = h("div", { class: "quad clip", "data-quadrant": String(n), onmouseenter: play, onmouseleave: rest,
        onfocusin: play, onfocusout: rest, onclick: () => this.full(cell, video, n) },
        video, h("button", { type: "button", class: "qnum", "aria-label": `Play clip ${n}` }, String(n)));
      void this.clip(uri).then((src) => {
        if (src) video.src = src;
        else {
          this.clips.delete(uri);
          this.note(`Cannot load clip ${n}.`, true);
        }
      });
      return cell;
    }));
  }

  private full(cell: HTMLElement, video: HTMLVideoElement, n: number): void {
    if (cell.classList.contains("full")) return;
    const close = h("button", { type: "button", class: "close", "aria-label": "Back to the four clips", onclick: (event: Event) => {
      event.stopPropagation();
      cell.classList.remove("full");
      Object.assign(video, { controls: false, muted: true, loop: true });
      video.pause();
      close.remove();
    } }, "×");
    cell.classList.add("full");
    cell.append(close);
    Object.assign(video, { controls: true, muted: false, loop: false, currentTime: 0 });
    void video.play().catch(() => undefined);
    const pick = this.root.querySelector<HTMLSelectElement>("select.clip");
    if (pick) {
      pick.value = String(n);
      pick.dispatchEvent(new Event("change"));
    }
  }

  /** A clip's data: URL, read once its poster is on screen (the poster first, then the bytes). */
  private clip(uri: string): Promise<string | null> {
    let got = this.clips.get(uri);
    if (!got) {
      // A microtask later: the render that asked has put its poster on the page by then.
      got = Promise.resolve().then(() => this.painted()).then(() => this.svc.media(uri)).catch(() => null);
      this.clips.set(uri, got);
      for (const old of this.clips.keys()) if (this.clips.size > CLIPS_KEPT) this.clips.delete(old);
    }
    return got;
  }

  /** describe's prompts (rewrite_prompt's too), each with a button that imagines it. */
  private prompts(record: ImageRecord): HTMLElement {
    const label = `${this.svc.catalogue.operations.imagine?.label ?? "Imagine"} this`;
    return h("ol", { class: "prompts" }, ...(record.prompts ?? []).map((text, i) => h("li", {}, h("p", {}, text),
      h("button", { type: "button", class: "act", disabled: this.busy, onclick: () => this.start(this.tool("imagine"), { prompt: text },
        (child) => `the user pressed ${label} on prompt ${i + 1} of ${record.name} -> ${child}`) }, label))));
  }

  private async act(record: ImageRecord, name: string): Promise<void> {
    const action = this.svc.catalogue.actions[name];
    if (!action || this.busy) return;
    if (action.needs_mask) return this.paint(record);
    await this.start(action.tool, { image: record.name, action: name }, (child) =>
      `the user pressed ${action.label} (${action.meaning}) on ${record.name} -> ${child}`);
  }

  /** Send a generating tool with wait_seconds 0 (it answers at once with the new name), then follow
   * the new image here. */
  private async start(tool: string, args: Record<string, unknown>, told: (child: string) => string): Promise<void> {
    if (this.busy) return;
    // The call leaves first, then the buttons are disabled (still before anything awaits, so a second
    // press cannot send twice): the press reaches the host without waiting for a re-style.
    const sent = this.svc.call(tool, { ...args, wait_seconds: 0 });
    this.setBusy(true);
    let result: ToolResult;
    try {
      result = await sent;
    } catch (err) {
      this.setBusy(false);
      return this.note(`Cannot reach the server: ${errorText(err)}`, true);
    }
    this.setBusy(false);
    const child = result.structuredContent as unknown as ImageRecord | undefined;
    if (!child || typeof child.name !== "string") return this.note(textOf(result) || "The action failed.", true);
    this.svc.tell(told(child.name));
    this.go({ kind: "image", name: child.name }, true);
    this.showRecord(child, null, result.isError ? textOf(result) : null);
  }

  private setBusy(busy: boolean): void {
    this.busy = busy;
    for (const b of this.root.querySelectorAll<HTMLButtonElement>("button.act")) b.disabled = busy;
    if (busy) this.note("Sending…");
  }

  private paint(record: ImageRecord): void {
    const stage = this.root.querySelector<HTMLElement>(".stage");
    if (!stage || this.painter) return;
    this.selected = null;
    stage.querySelector(".quads")?.remove();
    const actions = this.root.querySelector(".actions");
    const raw: [number, number] | null = record.raw_width && record.raw_height ? [record.raw_width, record.raw_height] : null;
    this.painter = new Painter(stage, {
      raw,
      onCancel: () => { this.painter?.close(); this.painter = null; this.render(null); },
      onRepaint: (mask, prompt) => {
        const args: Record<string, unknown> = { image: record.name, mask };
        if (prompt) args.prompt = prompt;
        void this.start(this.tool("inpaint"), args, (child) =>
          `the user painted a region of ${record.name} to repaint${prompt ? ` with "${prompt}"` : ""} -> ${child}`);
      },
    });
    if (actions) actions.replaceWith(this.painter.controls);
    else stage.after(this.painter.controls);
    this.painter.controls.querySelector<HTMLButtonElement>("button")?.focus();
  }

  /** Download and export: the image, the texts (a .txt), or the chosen clip of a video. */
  private saveRow(record: ImageRecord): HTMLElement {
    const clips = record.clips ?? [];
    const pick = clips.length ? h("select", { class: "clip", "aria-label": "Clip" },
      ...clips.map((_, i) => h("option", { value: String(i + 1) }, `Clip ${i + 1}`))) : null;
    const texts = record.kind === "texts";
    const file = () => (pick ? `${record.name}-${pick.value}.mp4` : `${record.name}.${texts ? "txt" : "png"}`);
    const path = h("input", { type: "text", value: file(), maxLength: 255, "aria-label": "Export file name", class: "path" });
    pick?.addEventListener("change", () => { path.value = file(); });
    const exportIt = async () => {
      this.note("Exporting…");
      const args: Record<string, unknown> = { image: record.name, path: path.value.trim() || file() };
      if (pick) args.clip = Number(pick.value);
      try {
        const result = await this.svc.call(this.tool("export"), args);
        this.note(textOf(result), !!result.isError);
        const saved = (result.structuredContent as { path?: string } | undefined)?.path;
        if (!result.isError && saved) this.svc.tell(`the user exported ${record.name}${pick ? ` clip ${pick.value}` : ""} to ${saved}`);
      } catch (err) {
        this.note(`Cannot reach the server: ${errorText(err)}`, true);
      }
    };
    const download = async () => {
      const uri = pick ? clips[Number(pick.value) - 1] : record.uri;
      if (await this.svc.download(uri, file(), pick ? "video/mp4" : texts ? "text/plain" : "image/png")) return;
      // No host download: a plain link to the picture or clip shown (the sandbox may still refuse it).
      const href = pick && uri ? await this.clip(uri) : this.picture;
      if (!href) return;
      const a = h("a", { href, download: pick ? file() : `${record.name}.jpg` });
      document.body.append(a);
      a.click();
      a.remove();
    };
    return h("div", { class: "save row" },
      h("button", { type: "button", onclick: download }, "Download"),
      pick,
      path,
      h("button", { type: "button", onclick: exportIt }, this.svc.catalogue.operations.export?.label ?? "Export"),
    );
  }

  // ---- the gallery ----------------------------------------------------------------------------

  private showGallery(list: ImageList, remember: boolean, restoring = false): void {
    const gen = restoring ? this.go({ kind: "gallery", list }, false) : this.go({ kind: "gallery", list }, remember);
    this.record = null;
    const names = new Set(list.images.map((i) => i.name));
    const children = new Map<string, ImageSummary[]>();
    const roots: ImageSummary[] = [];
    for (const image of list.images) {
      if (image.parent && names.has(image.parent)) {
        const siblings = children.get(image.parent) ?? [];
        siblings.push(image);
        children.set(image.parent, siblings);
      } else roots.push(image);
    }
    const thumbs: Array<[string, HTMLElement]> = [];
    const item = (image: ImageSummary): HTMLElement => {
      const pic = h("div", { class: "thumb", "aria-hidden": "true" });
      thumbs.push([image.name, pic]);
      const what = [image.kind, image.size, image.status !== "completed" ? image.status : null,
        image.parent && !names.has(image.parent) ? `from ${image.parent}` : null].filter(Boolean).join(" · ");
      const kids = children.get(image.name) ?? [];
      return h("li", {},
        h("button", { type: "button", class: "card", onclick: () => this.open(image.name) },
          pic,
          h("span", { class: "card-text" },
            h("strong", {}, image.name),
            h("span", { class: "muted" }, what),
            image.prompt ? h("span", { class: "card-prompt" }, image.prompt) : null)),
        kids.length ? h("ul", { class: "family" }, ...kids.map(item)) : null,
      );
    };
    const shown = list.images.length;
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.root.replaceChildren(
      h("header", {}, h("h2", {}, "Images"), h("span", { class: "badges" }, h("span", { class: "badge" }, shown < list.total ? `${shown} of ${list.total}` : `${shown}`))),
      shown ? h("ul", { class: "gallery" }, ...roots.map(item)) : h("p", { class: "muted" }, "No images yet in this session."),
      this.status,
    );
    void this.loadThumbs(gen, thumbs);
  }

  private async loadThumbs(gen: number, thumbs: Array<[string, HTMLElement]>): Promise<void> {
    const queue = thumbs.slice(0, THUMBS_MAX);
    const worker = async () => {
      while (queue.length && gen === this.generation) {
        const [name, el] = queue.shift()!;
        try {
          const result = await this.svc.call(this.tool("picture"), { image: name, max_px: THUMB_PX });
          const picture = pictureOf(result);
          if (picture && gen === this.generation) el.replaceChildren(h("img", { src: picture, alt: "" }));
        } catch {
          // a missing thumbnail leaves the placeholder; the card still opens the image
        }
      }
    };
    await Promise.all(Array.from({ length: THUMBS_AT_ONCE }, worker));
  }

  // ---- messages -------------------------------------------------------------------------------

  private message(text: string, error = false): void {
    this.status = h("p", { class: `status${error ? " error" : ""}`, role: error ? "alert" : "status" }, text);
    this.root.replaceChildren(this.status);
  }

  private note(text: string, error = false): void {
    if (!this.status || !this.status.isConnected) return this.message(text, error);
    this.status.textContent = text;
    this.status.className = `status${error ? " error" : ""}`;
    this.status.setAttribute("role", error ? "alert" : "status");
  }
}

/** Whether `image` can be the one a call with `args` started (`fromImage`: a tool acting on the image
 * named in `args.image`, whose result is that image's child). */
function startedBy(fromImage: boolean, args: Record<string, unknown>, image: ImageSummary): boolean {
  if (typeof args.name === "string") return image.name === args.name;
  if (fromImage) return image.parent === args.image;
  if (image.parent) return false;
  const words = (text: unknown) => (typeof text === "string" ? text.toLowerCase().replace(/[^a-z0-9]+/g, " ").trim() : "");
  const head = words(image.prompt?.replace(/…$/, "")).slice(0, 24);
  return head === "" ? !args.prompt : words(args.prompt).includes(head);
}

function progressText(record: ImageRecord): string {
  const pct = `${Math.round(record.progress)}%`;
  return record.preview === "intermediate" ? `Generating… ${pct} (preview)` : `Generating… ${pct}`;
}

/** After the next frame is painted: a frame's callbacks run before its paint, a task queued from one
 * runs after it. */
function afterNextPaint(): Promise<void> {
  return new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
