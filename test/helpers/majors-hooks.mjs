// The resolve hook test/helpers/majors.mjs registers: a bare import of a package (or of a file in it) goes to its alias.
let aliases = {}

export function initialize (data) {
  aliases = data
}

export async function resolve (specifier, context, next) {
  for (const [name, alias] of Object.entries(aliases)) {
    if (specifier === name || specifier.startsWith(name + '/')) return await next(alias + specifier.slice(name.length), context)
  }
  return await next(specifier, context)
}
