import { fileURLToPath } from 'node:url';

/** The bundle `npm start` serves: trained by models/ and committed with the repository. */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../models/bundles/calm-k4', import.meta.url));
export const DEFAULT_AR_MODEL_DIR = fileURLToPath(new URL('../../models/bundles/ar-baseline', import.meta.url));
