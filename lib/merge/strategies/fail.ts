/** `fail` (the default): a tensor changed on both sides stays a conflict. */
import { defineStrategy, strategyConflict } from '../registry';

export const fail = defineStrategy({
  name: 'fail',
  numeric: false,
  resolve: async (_inputs, _args, name) => {
    throw strategyConflict(name, 'fail', 'fail', 'changed differently on both sides (strategy fail)');
  },
});
