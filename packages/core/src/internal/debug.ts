import { debuglog } from 'node:util';

/** Silent unless NODE_DEBUG=cyb:core. */
export const debug = debuglog('cyb:core');
