import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (where statemachine/ and functions/ live), wherever the command is run from. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const STATEMACHINE_DIR = path.join(PROJECT_ROOT, 'statemachine');
