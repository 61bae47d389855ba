// Entry point of the web UI (docs/ui.md): mounts the app into #app.
import { html } from 'htm/preact';
import { render } from 'preact';
import { App } from './app';
import './style.css';

render(html`<${App} />`, document.getElementById('app')!);
