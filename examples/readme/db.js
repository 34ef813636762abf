// The data access the README examples call: a few rows in memory, standing in for your database.
const products = [{ id: 1, name: 'apple', price: 3 }, { id: 2, name: 'pear', price: 4 }]
const users = [{ id: 7, name: 'ada' }]
const orders = [{ id: 100, userId: 7, productId: 2 }]

export const db = {
  products: { all: async () => products },
  users: {
    find: async (id) => users.find((user) => user.id === id),
    byName: async (name) => users.find((user) => user.name === name)
  },
  orders: { of: async (userId) => orders.filter((order) => order.userId === userId) }
}
