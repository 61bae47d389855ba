/** `theirs`: take their version of the tensor (the input object itself). */
import { defineStrategy } from '../registry';

export const theirs = defineStrategy({
  name: 'theirs',
  numeric: false,
  resolve: async ({ theirs }) => theirs,
});
