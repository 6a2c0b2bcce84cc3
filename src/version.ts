// The version is the package's; the build stamps nothing else in.
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
