/** `dare`: DARE (drop task-vector entries with probability --drop, rescale; optionally TIES-combined). */
import { defineStrategy } from '../registry';
import { taskVectors } from './task-vectors';

export const dare = defineStrategy({
  name: 'dare',
  numeric: true,
  needsBase: true,
  requires: { param: 'drop', expected: 'number in [0, 1) (dare needs --drop)' },
  resolve: (inputs, a) => taskVectors('dare', inputs, a),
});
