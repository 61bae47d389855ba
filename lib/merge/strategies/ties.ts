/** `ties`: TIES-merging (trim to --density, elect signs, disjoint mean). */
import { defineStrategy } from '../registry';
import { taskVectors } from './task-vectors';

export const ties = defineStrategy({
  name: 'ties',
  numeric: true,
  needsBase: true,
  requires: { param: 'density', expected: 'number in (0, 1] (ties needs --density)' },
  resolve: (inputs, a) => taskVectors('ties', inputs, a),
});
