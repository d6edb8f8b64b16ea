// A minimal MCP Apps host for the browser tests, built on the official host side (AppBridge).
// It renders the view in a sandboxed iframe under the spec's default CSP, forwards the view's tool
// calls to `window.mcpCall` and its resource reads to `window.mcpRead` (the test's real MCP client on
// the real server), and records every
// exchange in `window.host.events`, stamped in epoch milliseconds (comparable across frames and with
// the test's own clock: bench/app.py times the view with them).

import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

// The spec's restrictive default for a ui:// resource that declares no CSP.
const DEFAULT_CSP = [
  "default-src 'none'", "script-src 'self' 'unsafe-inline'", "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:", "media-src 'self' data:", "connect-src 'none'", "frame-src 'none'",
  "object-src 'none'", "base-uri 'self'",
].join("; ");

interface HostEvent { kind: string; at: number; payload: unknown }
interface ShowOptions {
  html: string;
  tool: string;
  input: Record<string, unknown>;
  result?: unknown;
  theme?: "light" | "dark";
  width?: number;
  capabilities?: Record<string, unknown>;
}

declare global {
  interface Window {
    mcpCall(name: string, args: Record<string, unknown>): Promise<unknown>;
    mcpRead(uri: string): Promise<unknown>;
    host: Host;
  }
}

// Chromium logs a CSP violation outside the console API, where Playwright does not see it:
// this turns each into a console error, which every browser test counts as a problem.
const REPORT_CSP_VIOLATIONS = `<script>addEventListener("securitypolicyviolation", (e) => console.error(\`CSP violation: \${e.violatedDirective} \${e.blockedURI}\`));</script>`;

function withCsp(html: string): string {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${DEFAULT_CSP}">`;
  return html.replace(/<head>/i, `<head>${meta}${REPORT_CSP_VIOLATIONS}`);
}

class Host {
  events: HostEvent[] = [];
  bridge: AppBridge | null = null;
  private initialized: Promise<void> | null = null;

  private record(kind: string, payload: unknown): void {
    this.events.push({ kind, at: performance.timeOrigin + performance.now(), payload });
  }

  async show(options: ShowOptions): Promise<void> {
    const iframe = document.getElementById("frame") as HTMLIFrameElement;
    iframe.style.width = `${options.width ?? 420}px`;
    document.body.classList.toggle("dark", options.theme === "dark");
    const capabilities = options.capabilities ?? {
      serverTools: {}, serverResources: {}, updateModelContext: { text: {} }, message: { text: {} }, downloadFile: {}, logging: {},
    };
    const bridge = new AppBridge(null, { name: "mj-mcp test host", version: "1.0.0" }, capabilities, {
      hostContext: {
        theme: options.theme ?? "light",
        displayMode: "inline",
        availableDisplayModes: ["inline"],
        containerDimensions: { width: options.width ?? 420, maxHeight: 2000 },
        platform: "web",
        toolInfo: { tool: { name: options.tool, inputSchema: { type: "object" } } },
      },
    });
    this.bridge = bridge;
    bridge.oncalltool = async (params) => {
      this.record("call", { name: params.name, arguments: params.arguments });
      const result = await window.mcpCall(params.name, params.arguments ?? {});
      this.record("answer", { name: params.name });
      return result as never;
    };
    bridge.onreadresource = async (params) => {
      this.record("read", { uri: params.uri });
      return (await window.mcpRead(params.uri)) as never;
    };
    bridge.onupdatemodelcontext = async (params) => {
      this.record("context", params);
      return {};
    };
    bridge.onmessage = async (params) => {
      this.record("message", params);
      return {};
    };
    bridge.ondownloadfile = async (params) => {
      this.record("download", params);
      return {};
    };
    bridge.onsizechange = ({ height }) => {
      if (height !== undefined) iframe.style.height = `${height}px`;
      this.record("size", { height });
    };
    bridge.onloggingmessage = (params) => this.record("log", params);
    this.initialized = new Promise((done) => {
      bridge.oninitialized = () => {
        this.record("initialized", null);
        done();
      };
    });
    await bridge.connect(new PostMessageTransport(iframe.contentWindow!, iframe.contentWindow!));
    this.record("load", null);
    iframe.srcdoc = withCsp(options.html);
    await this.initialized;
    await bridge.sendToolInput({ arguments: options.input });
    if (options.result !== undefined) await this.result(options.result);
  }

  async result(result: unknown): Promise<void> {
    await this.initialized;
    this.record("result", null);
    await this.bridge!.sendToolResult(result as never);
  }

  async theme(theme: "light" | "dark"): Promise<void> {
    document.body.classList.toggle("dark", theme === "dark");
    await this.bridge!.sendHostContextChange({ theme });
  }
}

window.host = new Host();
