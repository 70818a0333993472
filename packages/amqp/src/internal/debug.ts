import { debuglog } from 'node:util';

/** Silent unless NODE_DEBUG=cyb:amqp. */
export const debug = debuglog('cyb:amqp');
