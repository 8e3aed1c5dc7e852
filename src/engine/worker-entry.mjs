// Development entry (running from src/ through tsx): workers do not inherit tsx's loader.
import { register } from 'tsx/esm/api';
register();
await import('./worker.ts');
