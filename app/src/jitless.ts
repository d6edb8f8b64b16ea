// Imported before the SDK. The first time zod builds an object schema it probes `new Function` to
// compile faster parsers; the default CSP of a view forbids eval, so the probe fails and the browser
// reports a CSP violation on every start. Without the JIT, zod parses the same, interpreted.
import { config } from "zod/v4/core";

config({ jitless: true });
