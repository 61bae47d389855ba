/** `task-arithmetic`: base + lambda * the sum of the task vectors. */
import { defineStrategy } from '../registry';
import { taskVectors } from './task-vectors';

export const taskArithmetic = defineStrategy({
  name: 'task-arithmetic',
  numeric: true,
  needsBase: true,
  resolve: (inputs, a) => taskVectors('task-arithmetic', inputs, a),
});
