// The catalogue, as the server injected it into the page: the buttons' set and labels come from
// mj_mcp/core/actions.py, the tools called and their roles from mj_mcp/core/operations.py, never from
// a list written here.

import type { Catalogue, ImageRecord, Action } from "./types";

export function loadCatalogue(doc: Document): Catalogue {
  const slot = doc.getElementById("mj-catalogue");
  try {
    const parsed = JSON.parse(slot?.textContent || "{}");
    return { actions: parsed.actions ?? {}, operations: parsed.operations ?? {}, tools: parsed.tools ?? {} };
  } catch {
    return { actions: {}, operations: {}, tools: {} };
  }
}

/** The tool that runs an operation of the server's table ("list", "picture", "export", "get", "inpaint"). */
export function toolFor(operation: string, catalogue: Catalogue): string {
  return catalogue.operations[operation]?.tool ?? operation;
}

/** The actions to show under an image: what the image itself offers, in upstream's order, then the
 * actions upstream accepts on this kind without listing them (Vary (Region) on a single image). */
export function buttonsFor(record: ImageRecord, catalogue: Catalogue): string[] {
  if (record.status !== "completed") return [];
  const offered = record.actions.filter((name) => name in catalogue.actions);
  const unlisted = Object.entries(catalogue.actions)
    .filter(([name, a]) => record.kind !== null && a.unlisted_on.includes(record.kind) && !offered.includes(name))
    .map(([name]) => name);
  return [...offered, ...unlisted];
}

/** The offered actions that act on quadrant `n` of a grid (U_n, V_n). */
export function quadrantActions(record: ImageRecord, catalogue: Catalogue, n: number): string[] {
  return record.actions.filter((name) => catalogue.actions[name]?.quadrant === n);
}

/** A button's accessible name: its label, or its meaning where the label is only an arrow. */
export function spoken(action: Action): string {
  return /[A-Za-z]/.test(action.label) ? action.label : capital(action.meaning);
}

function capital(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** What made a record, as the App labels it: an action's button, else an operation's label. */
export function labelOf(name: string, catalogue: Catalogue): string {
  const action = catalogue.actions[name];
  if (!action) return catalogue.operations[name]?.label ?? name;
  return action.makes === "videos" && action.quadrant ? `${action.label}, clip ${action.quadrant}` : action.label;
}
