// @secbus/sdk: the Node.js client for secbus (being built: issue 5).
export const VERSION = '0.1.0';
