import { debuglog } from 'node:util';

/** Silent unless `NODE_DEBUG=cyb:redis`. */
export const debug = debuglog('cyb:redis');
