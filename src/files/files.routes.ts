/** Base paths: DeepInfra style and plain OpenAI style, so either base URL works with the SDKs. */
export const FILES_ROUTES = ['v1/openai/files', 'v1/files'];
