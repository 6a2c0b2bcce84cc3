// `import p from "x.wasm" with { type: "file" }` yields the file's path (a $bunfs path in
// the compiled binary), which src/policy/engine.ts reads and compiles.
declare module "*.wasm" {
  const path: string;
  export default path;
}
