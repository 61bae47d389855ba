// Vite turns CSS imports into <link> tags in the built page.
declare module '*.css';
