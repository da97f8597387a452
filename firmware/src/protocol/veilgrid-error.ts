// The one error shape of the project, on the meter and on the host: a sentence for people (message), a
// stable code for programs and tests (code), the class's name (name), and the error it came from (cause)
// when there is one. Device-safe: on Espruino 2v29 the build keeps each subclass's prototype through the
// lowered super() call (host-tools/build/fix-builtin-subclasses.ts), and the fields are set explicitly,
// as Espruino's Error does not fill them in for a subclass.
export class VeilgridError extends Error {
  declare readonly code: string;
  constructor(name: string, code: string, message: string, cause?: unknown) {
    super(message);
    this.name = name;
    this.message = message;
    this.code = code;
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}
