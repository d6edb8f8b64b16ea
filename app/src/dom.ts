// A tiny element builder: the view is a few dozen elements, no framework needed.

type Child = Node | string | null | undefined | false;
type Props = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = String(value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value as EventListener);
    else if (key.startsWith("aria-") || key.startsWith("data-") || key === "role" || key === "for") el.setAttribute(key, String(value));
    else (el as unknown as Record<string, unknown>)[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** Text of a tool result's text blocks (never HTML: record fields go in as text only). */
export function textOf(result: { content?: Array<{ type: string; text?: string }> }): string {
  return (result.content ?? []).filter((c) => c.type === "text" && c.text).map((c) => c.text).join("\n");
}

/** The first picture of a tool result as a data: URL (the host's CSP allows data:, not blob: or https:). */
export function pictureOf(result: { content?: Array<{ type: string; data?: string; mimeType?: string }> }): string | null {
  for (const c of result.content ?? []) {
    if (c.type === "image" && c.data && /^image\/(jpeg|png|webp|gif)$/.test(c.mimeType ?? "")) {
      return `data:${c.mimeType};base64,${c.data}`;
    }
  }
  return null;
}
