// What an MCPB host does with the bundle, by the official library's own functions: unpack it, then
// resolve the manifest's mcp_config for the user's settings (${__dirname}, ${user_config.*}).
//
//   node host.mjs <bundle.mcpb> <directory to unpack into> [user config as JSON, default {}]
//
// Prints the resolved mcp_config as one JSON line (tests/test_bundle.py runs it); exits 1 when the
// bundle does not unpack or the config does not resolve.
import { readFileSync } from "node:fs";
import { join, sep } from "node:path";

import { getMcpConfigForManifest, unpackExtension } from "@anthropic-ai/mcpb";

const [bundle, directory, userConfig = "{}"] = process.argv.slice(2);
if (!(await unpackExtension({ mcpbPath: bundle, outputDir: directory, silent: true }))) process.exit(1);
const manifest = JSON.parse(readFileSync(join(directory, "manifest.json"), "utf8"));
const config = await getMcpConfigForManifest({
  manifest, extensionPath: directory, systemDirs: {}, userConfig: JSON.parse(userConfig), pathSeparator: sep,
});
if (!config) process.exit(1);
console.log(JSON.stringify(config));
