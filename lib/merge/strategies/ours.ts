/** `ours`: keep our version of the tensor (the input object itself). */
import { defineStrategy } from '../registry';

export const ours = defineStrategy({
  name: 'ours',
  numeric: false,
  resolve: async ({ ours }) => ours,
});
