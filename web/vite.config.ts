// The web client's build: two pages (chat at /, dashboard at /dashboard/) into web/dist, which the
// server serves. `npm run dev:web` serves them with hot reload and proxies the API to a running server.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const backend = process.env.WEB_BACKEND ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: here('.'),
  base: '/',
  publicDir: false,
  clearScreen: false,
  build: {
    outDir: here('./dist'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 200,
    rollupOptions: { input: { chat: here('./index.html'), dashboard: here('./dashboard/index.html') } },
  },
  server: {
    proxy: {
      '/api': backend,
      '/health': backend,
      '/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
    },
  },
});
