// The data access the README examples call: a few rows in memory, standing in for your database. Like a database, it
// answers with new objects each time: changing what it returned changes nothing here.
const products = [{ id: 1, name: 'apple', price: 3 }, { id: 2, name: 'pear', price: 4 }]
const users = [{ id: 7, name: 'ada' }]
const orders = [{ id: 100, userId: 7, productId: 2 }, { id: 101, userId: 8, productId: 1 }, { id: 102, userId: 8, productId: 2 }]

export const db = {
  products: {
    all: async () => structuredClone(products),
    find: async (id) => structuredClone(products.find((product) => product.id === id)),
    // As `WHERE id IN (…)` answers: the rows found, in the table's order, none for an id it does not have.
    findMany: async (ids) => structuredClone(products.filter((product) => ids.includes(product.id))),
    setPrice: async (id, price) => {
      const product = products.find((row) => row.id === id)
      if (product !== undefined) product.price = price
    }
  },
  users: {
    find: async (id) => structuredClone(users.find((user) => user.id === id)),
    byName: async (name) => structuredClone(users.find((user) => user.name === name))
  },
  orders: {
    of: async (userId) => structuredClone(orders.filter((order) => order.userId === userId)),
    all: async () => structuredClone(orders)
  }
}
