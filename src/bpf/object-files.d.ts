// BPF objects imported `with { type: "file" }` resolve to a path: a real file when run
// from source, an embedded /$bunfs path inside the compiled binary.
declare module "*.o" {
  const path: string;
  export default path;
}
