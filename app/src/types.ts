// The data the server sends; field names as in the tools' structuredContent (see app/README.md).

export type Status = "running" | "completed" | "failed";
export type Kind = "grid" | "single" | "upscaled" | "videos" | "texts" | "edits" | "edited" | "seed";

export interface ImageRecord {
  name: string;
  status: Status;
  progress: number;
  kind: Kind | null;
  task_id?: string | null;
  image_id?: string | null;
  width?: number | null;
  height?: number | null;
  raw_width?: number | null;
  raw_height?: number | null;
  actions: string[];
  parent: string | null;
  action: string;
  prompt: string | null;
  sources?: string[];
  error: { code: string; message: string } | null;
  simulated?: boolean;
  uri?: string | null;
  /** A texts record's texts (describe's prompts, rewrite_prompt's candidates). */
  prompts?: string[];
  /** An edit's four results, by name, 1-4 from top-left as its picture shows them. */
  results?: string[];
  /** A video's clips, one resource URI each (mj://videos/<name>/<n>), 1-4 as its poster shows them. */
  clips?: string[];
  /** view_image only: what its picture is, the finished image or upstream's latest partial one. */
  preview?: "final" | "intermediate" | null;
}

export interface ImageSummary {
  name: string;
  kind: Kind | null;
  size: string | null;
  status: Status;
  parent: string | null;
  prompt: string | null;
}

export interface ImageList {
  images: ImageSummary[];
  total: number;
}

/** One action of the server's catalogue (mj_mcp/core/actions.py), injected into the page. */
export interface Action {
  label: string;
  meaning: string;
  tool: string;
  makes: Kind;
  quadrant: number | null;
  unlisted_on: Kind[];
  needs_mask: boolean;
}

/** One operation of the server's table (mj_mcp/core/operations.py): the tool that runs it, its label. */
export interface Operation {
  tool: string;
  label: string;
  makes: Kind | null;
}

/** One tool of the server's table: its title, whether it starts a paid job, whether it acts on an
 * earlier image named in its `image` argument. */
export interface ToolInfo {
  title: string;
  generates: boolean;
  from_image: boolean;
}

export interface Catalogue {
  actions: Record<string, Action>;
  operations: Record<string, Operation>;
  tools: Record<string, ToolInfo>;
}

/** What a tool call returns, as far as the view reads it. */
export interface ToolResult {
  content?: Array<{ type: string; text?: string; data?: string; mimeType?: string }>;
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}
