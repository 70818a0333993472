import { debuglog } from 'node:util';

/** Silent unless NODE_DEBUG=cyb:vsm. */
export const debug = debuglog('cyb:vsm');

/** Tracing failures that were swallowed so the host kept running; read through `vsmStats()`. */
export const failures = {
  /** A handler whose declaration could not be located (no inspector, native or eval'd code, ...). */
  location: 0,
  /** A span, attribute or propagation step that threw and was skipped. */
  tracing: 0,
};
