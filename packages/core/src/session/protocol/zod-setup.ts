// zod/mini leaves out zod's English error messages unless asked: load them once, so that
// errors read "Invalid input: expected number, received undefined", not just "Invalid input".
import { config } from 'zod/mini';
import { en } from 'zod/locales';

config(en());
